"""The JSON API under generated input (schemathesis, in-process through WSGI): for every
operation in /api/v1/openapi.json, requests built from the document, valid ones and invalid
ones, sent with a valid token to an app on the world's database with a case and a shipment
in it. No answer is a 5xx, every status is one the document lists for the operation, and
every body matches the schema the document gives for it.

Two tests: generated requests (hypothesis, EXAMPLES per operation, valid and invalid), and
schemathesis's coverage phase (every boundary the document names). Bounded and repeatable:
derandomized, so every run on either engine sends the same requests (about 20-40 s on SQLite).

The operations come from coi.api.openapi.document() when the module is collected, and each
test loads the document the app serves. (schemathesis's own pytest loader,
`schemathesis.pytest.from_fixture`, sets `Function._nodeid`, which pytest 9 no longer has.)"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from coi.api import openapi
from coi.models import coi_of, serial_of
from coi.services import enrolment
from tests.helpers import api_token, bearer, make_case, open_for

# More to look harder on your machine (the suite's runs stay at 25): COI_TEST_FUZZ_EXAMPLES=500
EXAMPLES = int(os.environ.get("COI_TEST_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
DOCUMENT = openapi.document()
OPERATIONS = [(path, method.upper()) for path, item in DOCUMENT["paths"].items() for method in item]


def can_be_invalid(path: str, method: str) -> bool:
    """Whether the document constrains the operation's input at all: a body, or a parameter
    that is more than any text. (An operation with nothing to break makes hypothesis give up.)"""
    operation = DOCUMENT["paths"][path][method.lower()]
    return "requestBody" in operation or any(parameter["schema"] != {"type": "string"}
                                             for parameter in operation.get("parameters", []))


@pytest.fixture
def records(app, session, world, clock) -> dict[str, Any]:
    """What valid requests name in their paths: a case, its unit, its shipment (logger LOG-1)."""
    case = make_case(app, session, world, clock)
    unit = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                   coi_text=coi_of(case).text, kind="apheresis_bag")
    shipment = open_for(session, world, clock, case)
    return {"coi": coi_of(case).text, "serial": serial_of(unit).text, "shipment_id": shipment.id}


FUZZED = [(path, method, mode) for path, method in OPERATIONS for mode in GenerationMode
          if mode is GenerationMode.POSITIVE or can_be_invalid(path, method)]


@pytest.mark.parametrize(("path", "method", "mode"), FUZZED,
                         ids=[f"{m} {p} {'valid' if g is GenerationMode.POSITIVE else 'invalid'}"
                              for p, m, g in FUZZED])
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
        app, session, clock, world, records, path, method, mode):
    headers = bearer(api_token(session, clock, world, "staff"))
    operation = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)[path][method]
    # Valid requests go to the records, so that their bodies reach the code behind the
    # lookup; invalid ones get whatever ids are generated (tests/test_hostile_input.py
    # sweeps the ids no row can have).
    fixed = ({name: records[name] for name in re.findall(r"{(\w+)}", path)}
             if mode is GenerationMode.POSITIVE else {})

    @given(case=operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=fixed))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def generated(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    generated()


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_boundary_request_gets_a_server_error_or_an_undocumented_answer(
        app, session, clock, world, records, path, method):
    """schemathesis's coverage phase: no randomness, every edge the document names (each
    bound and one past it, each required field missing, each wrong type, other methods)."""
    headers = bearer(api_token(session, clock, world, "staff"))
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method]
    cases = list(schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode),
                                            generation_config=schema.config.generation_for(operation=operation)))
    assert cases
    for case in cases:
        case.call_and_validate(headers=headers, checks=CHECKS)
