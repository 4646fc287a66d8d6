"""Bad input gets a clear message and changes nothing: through the JSON API (problem+json with
the field at fault) and through the web UI (the form again, or an error page), never a stack
trace and never a row written."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlmodel import Session

from coi.api import openapi
from coi.core.identifiers import CoiId
from coi.models import AuditEntry, Case, Patient, Unit
from tests.helpers import ENROL_FORM, api_token, bearer, count, enrol_body, login, post_form, with_wrong_check

API = "/api/v1"
MISSING = object()
MAX_BODY = 1024 * 1024  # MAX_CONTENT_LENGTH by default
OVERSIZED = MAX_BODY + 64 * 1024


def rows(session: Session) -> dict[str, int]:
    """Rows in every table a refused request must leave alone."""
    return {model.__tablename__: count(session, model)  # type: ignore[attr-defined]
            for model in (Case, Patient, Unit, AuditEntry)}


def changed(path: str, value: Any) -> dict[str, Any]:
    """A valid enrolment body with the field at dotted `path` set to `value` (or removed)."""
    body = copy.deepcopy(enrol_body())
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is MISSING:
        del target[last]
    else:
        target[last] = value
    return body


def assert_no_trace(response: Any) -> None:
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert 'File "' not in text


def assert_problem(response: Any, status: int, operation: tuple[str, str]) -> dict[str, Any]:
    """A documented status, as problem+json with a sentence for a person."""
    path, method = operation
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert str(status) in openapi.document()["paths"][path][method]["responses"], (
        f"{status} is not documented for {method.upper()} {path}")
    assert response.mimetype == "application/problem+json"
    assert_no_trace(response)
    problem = response.get_json()
    assert problem["status"] == status
    detail = problem["detail"]
    assert len(detail) > 15 and " " in detail and "Error" not in detail, detail
    return problem


@pytest.fixture
def token(session, clock, world) -> str:
    return api_token(session, clock, world, "staff")


@pytest.fixture
def case_coi(client, token) -> str:
    response = client.post(f"{API}/cases", json=enrol_body(), headers=bearer(token))
    assert response.status_code == 201
    return response.get_json()["coi"]


# ---------------------------------------------------------------- API: enrolment body

ENROL = ("/cases", "post")
UNITS = ("/cases/{coi}/units", "post")

ENROLMENT_REFUSALS = [
    pytest.param(changed("site", MISSING), "site", "required", id="missing-site"),
    pytest.param(changed("product", MISSING), "product", "required", id="missing-product"),
    pytest.param(changed("manufacturing_site", MISSING), "manufacturing_site", "required",
                 id="missing-manufacturing_site"),
    pytest.param(changed("patient.name", MISSING), "patient.name", "required",
                 id="missing-patient.name"),
    pytest.param(changed("patient.birth_date", MISSING), "patient.birth_date", "required",
                 id="missing-patient.birth_date"),
    pytest.param(changed("patient.mrn", MISSING), "patient.mrn", "required",
                 id="missing-patient.mrn"),
    pytest.param(changed("patient", MISSING), "patient", "required", id="missing-patient"),
    pytest.param(changed("patient.birth_date", 19610314), "patient.birth_date", "YYYY-MM-DD",
                 id="birth_date-as-number"),
    pytest.param(changed("patient.birth_date", 0), "patient.birth_date", "YYYY-MM-DD",
                 id="birth_date-as-unix-time"),
    pytest.param(changed("patient.birth_date", "-283996800"), "patient.birth_date",
                 "YYYY-MM-DD", id="birth_date-as-unix-time-text"),
    pytest.param(changed("patient.birth_date", "1961-03-14T00:00:00"), "patient.birth_date",
                 "YYYY-MM-DD", id="birth_date-with-a-time"),
    pytest.param(changed("patient", "Harriet Vance"), "patient", "patient", id="patient-as-string"),
    pytest.param(changed("patient.name", 42), "patient.name", "as text", id="name-as-number"),
    pytest.param(changed("priority", "high"), "priority", "not expected", id="extra-field"),
    pytest.param(changed("patient.ssn", "123-45-6789"), "patient.ssn", "not expected",
                 id="extra-patient-field"),
    pytest.param(changed("patient.birth_date", "2026-11-23"), "patient.birth_date", "future",
                 id="born-tomorrow"),
    pytest.param(changed("patient.birth_date", "1899-12-31"), "patient.birth_date", "1900",
                 id="born-before-1900"),
    pytest.param(changed("patient.birth_date", "1961-02-30"), "patient.birth_date", "YYYY-MM-DD",
                 id="no-such-date"),
    pytest.param(changed("patient.name", "    "), "patient.name", "empty", id="name-of-spaces"),
    pytest.param(changed("patient.mrn", ""), "patient.mrn", "empty", id="empty-mrn"),
    pytest.param(changed("site", "XXX"), "site", "'XXX'", id="unknown-site"),
    pytest.param(changed("product", "NOPE"), "product", "'NOPE'", id="unknown-product"),
    pytest.param(changed("manufacturing_site", "BER"), "manufacturing_site",
                 "not a manufacturing site", id="manufacturing_site-not-manufacturing"),
    pytest.param(changed("manufacturing_site", "ZZZ"), "manufacturing_site", "'ZZZ'",
                 id="unknown-manufacturing_site"),
]


@pytest.mark.parametrize("body, field, says", ENROLMENT_REFUSALS)
def test_an_enrolment_with_a_bad_field_is_refused_naming_the_field_and_changes_nothing(
        client, session, token, body, field, says):
    before = rows(session)
    response = client.post(f"{API}/cases", json=body, headers=bearer(token))
    problem = assert_problem(response, 422, ENROL)
    assert field in [error["field"] for error in problem["errors"]], problem
    assert all(error["message"] for error in problem["errors"])
    assert says.lower() in problem["detail"].lower(), problem["detail"]
    assert rows(session) == before


def test_every_missing_field_is_named_at_once(client, session, token):
    before = rows(session)
    response = client.post(f"{API}/cases", json={"patient": {}}, headers=bearer(token))
    problem = assert_problem(response, 422, ENROL)
    assert {error["field"] for error in problem["errors"]} == {
        "site", "product", "manufacturing_site", "patient.name", "patient.birth_date",
        "patient.mrn"}
    assert rows(session) == before


# ---------------------------------------------------------------- API: body and transport

BAD_BODIES = [
    pytest.param(b'{"site": "BOS", ', "application/json", 422, "not valid JSON", id="not-json"),
    pytest.param(json.dumps(enrol_body()).encode(), "text/plain", 422, "Content-Type",
                 id="wrong-content-type"),
    pytest.param(b"site=BOS&product=CARTX", "application/x-www-form-urlencoded", 422,
                 "Content-Type", id="form-encoded"),
    pytest.param(b"", "application/json", 422, "JSON", id="empty-body"),
    pytest.param(b'[{"kind": "sample"}]', "application/json", 422, "JSON object",
                 id="json-array"),
    pytest.param(b'"sample"', "application/json", 422, "JSON object", id="json-string"),
    pytest.param(b"null", "application/json", 422, "JSON", id="json-null"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "application/json", 422, "nested",
                 id="nested-too-deeply"),
    pytest.param(b'{"x": "' + b"a" * OVERSIZED + b'"}', "application/json", 413, "larger",
                 id="oversized"),
]


@pytest.mark.parametrize("body, content_type, status, says", BAD_BODIES)
@pytest.mark.parametrize("endpoint", ["enrol", "register unit"])
def test_a_body_that_is_not_a_json_object_is_refused_and_changes_nothing(
        client, session, token, case_coi, endpoint, body, content_type, status, says):
    url, operation = ((f"{API}/cases", ENROL) if endpoint == "enrol"
                      else (f"{API}/cases/{case_coi}/units", UNITS))
    before = rows(session)
    response = client.post(url, data=body, content_type=content_type, headers=bearer(token))
    problem = assert_problem(response, status, operation)
    assert says.lower() in problem["detail"].lower(), problem["detail"]
    assert rows(session) == before


def test_an_oversized_request_is_refused_as_too_large(client, session, token):
    before = rows(session)
    body = enrol_body(name="x" * OVERSIZED)
    response = client.post(f"{API}/cases", json=body, headers=bearer(token))
    problem = assert_problem(response, 413, ENROL)
    assert problem["code"] == "too_large"
    assert "nothing was saved" in problem["detail"]
    assert "The limit here is 1,048,576 bytes (1 MB)." in problem["detail"]
    assert problem["max_bytes"] == MAX_BODY
    assert rows(session) == before


# ---------------------------------------------------------------- API: units

UNIT_REFUSALS = [
    pytest.param({"kind": "cooler"}, "kind", "apheresis_bag", id="unknown-kind"),
    pytest.param({"kind": "SAMPLE"}, "kind", "sample", id="kind-in-capitals"),
    pytest.param({}, "kind", "required", id="missing-kind"),
    pytest.param({"kind": 1}, "kind", "kind", id="kind-as-number"),
    pytest.param({"kind": "sample", "count": 2}, "count", "not expected", id="extra-field"),
]


@pytest.mark.parametrize("body, field, says", UNIT_REFUSALS)
def test_a_unit_with_a_bad_field_is_refused_naming_the_field_and_changes_nothing(
        client, session, token, case_coi, body, field, says):
    before = rows(session)
    response = client.post(f"{API}/cases/{case_coi}/units", json=body, headers=bearer(token))
    problem = assert_problem(response, 422, UNITS)
    assert [error["field"] for error in problem["errors"]] == [field]
    assert says.lower() in problem["detail"].lower(), problem["detail"]
    assert rows(session) == before


def test_a_unit_for_a_coi_with_a_wrong_check_character_is_refused_as_bad_check(
        client, session, token, case_coi):
    before = rows(session)
    response = client.post(f"{API}/cases/{with_wrong_check(case_coi)}/units",
                           json={"kind": "sample"}, headers=bearer(token))
    problem = assert_problem(response, 422, UNITS)
    assert problem["code"] == "bad_check"
    assert problem["position"] == 14
    assert "re-scan or re-type" in problem["detail"]
    assert rows(session) == before


@pytest.mark.parametrize("cut", [1, -1], ids=["one-short", "one-long"])
def test_a_unit_for_a_coi_of_the_wrong_length_is_refused(client, session, token, case_coi, cut):
    coi = case_coi[:-1] if cut == 1 else case_coi + "0"
    before = rows(session)
    response = client.post(f"{API}/cases/{coi}/units", json={"kind": "sample"},
                           headers=bearer(token))
    problem = assert_problem(response, 422, UNITS)
    assert problem["code"] == "wrong_length"
    assert "14 characters" in problem["detail"]
    assert rows(session) == before


def test_a_unit_for_a_case_that_does_not_exist_is_not_found(client, session, token, case_coi):
    unknown = CoiId("A9998", "26", "0000ZZ").text
    before = rows(session)
    response = client.post(f"{API}/cases/{unknown}/units", json={"kind": "sample"},
                           headers=bearer(token))
    problem = assert_problem(response, 404, UNITS)
    assert unknown in problem["detail"]
    assert rows(session) == before


# ---------------------------------------------------------------- web UI

@pytest.fixture
def staff(client, world) -> Any:
    assert login(client, "staff").status_code == 302
    return client


def test_the_enrol_form_without_a_name_comes_back_with_the_message_and_the_typed_values(
        staff, session):
    before = rows(session)
    response = post_form(staff, "/cases/new", "/cases/new", ENROL_FORM | {"name": ""})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert_no_trace(response)
    # The message sits right after the name input, before the next field.
    name_input, message = page.index('name="name"'), page.index('id="name-error"')
    assert name_input < message < page.index('name="birth_date"')
    assert "This field must not be empty." in page[message:page.index('name="birth_date"')]
    assert 'value="1961-03-14"' in page
    assert 'value="MRN-0001"' in page
    assert '<option value="BOS" selected>' in page
    assert rows(session) == before


def test_the_enrol_form_with_a_future_birth_date_comes_back_with_the_message(staff, session):
    before = rows(session)
    response = post_form(staff, "/cases/new", "/cases/new",
                         ENROL_FORM | {"birth_date": "2026-11-23"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    message = page.index('id="birth_date-error"')
    assert "in the future" in page[message:page.index('name="mrn"')]
    assert 'value="Harriet Vance"' in page
    assert rows(session) == before


def test_enrolling_an_mrn_twice_in_the_ui_is_refused_with_the_reason(staff, session):
    first = post_form(staff, "/cases/new", "/cases/new", ENROL_FORM)
    assert first.status_code == 302
    before = rows(session)
    again = post_form(staff, "/cases/new", "/cases/new", ENROL_FORM | {"name": "Someone Else"})
    assert again.status_code == 409
    page = again.get_data(as_text=True)
    assert "already enrolled at Boston Hospital" in page
    assert 'value="Someone Else"' in page
    assert_no_trace(again)
    assert rows(session) == before


def test_an_oversized_form_post_gets_a_page_that_says_so(staff, session):
    before = rows(session)
    response = post_form(staff, "/cases/new", "/cases/new", ENROL_FORM | {"name": "x" * OVERSIZED})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "larger than this server accepts; nothing was saved." in page
    assert "The limit here is 1,048,576 bytes (1 MB)." in page
    assert_no_trace(response)
    assert rows(session) == before


def test_a_case_url_with_a_wrong_check_character_gets_a_page_naming_the_problem(staff):
    coi = CoiId("A9998", "26", "000001")
    assert coi.check != "Z"
    response = staff.get(f"/cases/{coi.compact}Z")
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Code not accepted: wrong check character" in page
    assert "Check character is" in page and "re-scan or re-type" in page
    assert_no_trace(response)


def test_a_case_url_of_the_wrong_length_gets_a_page_naming_the_problem(staff):
    response = staff.get("/cases/A99982600001")
    assert response.status_code == 422
    assert "14 characters" in response.get_data(as_text=True)
    assert_no_trace(response)


def test_an_unknown_case_gets_a_not_found_page(staff):
    unknown = CoiId("A9998", "26", "0000ZZ").text
    response = staff.get(f"/cases/{unknown}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert f"No case {unknown}" in page
    assert_no_trace(response)


@pytest.mark.parametrize("field", ["name", "mrn"])
def test_control_characters_in_a_name_or_mrn_are_refused_and_nothing_is_saved(
        client, world, session, clock, field):
    token = api_token(session, clock, world, "staff")
    patient = {"name": "Ann Example", "birth_date": "1961-03-14", "mrn": "M-1"}
    patient[field] = patient[field] + "\x00\x1b[2J"
    body = {"site": "BOS", "product": "CARTX", "manufacturing_site": "MFG", "patient": patient}
    response = client.post("/api/v1/cases", json=body, headers=bearer(token))
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"field": f"patient.{field}",
         "message": "Control characters (such as line breaks) are not allowed here."}]
    assert client.get("/api/v1/cases", headers=bearer(token)).get_json()["cases"] == []
