"""The JSON API as a client sees it: the OpenAPI document, answers that match it, list filters,
identifier parsing and unit look-up."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate as validate_openapi

from coi.api import openapi
from coi.core.identifiers import CoiId, UnitSerial
from coi.services import masterdata
from tests.helpers import ROUTE, api_token, assert_as_documented, bearer, enrol_body, with_wrong_check

API = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds these to every rule
GS1_DEMO = "01095040000591012112345678p901\x1d101234567p\x1d171411208200http://www.gs1.org/demo/"


# ---------------------------------------------------------------- helpers

def served_routes(app: Flask) -> set[tuple[str, str]]:
    """(path as OpenAPI writes it, lower-case method) for every /api/v1 rule of the app."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        path = rule.rule.removeprefix(API)
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", f"{{{argument}}}")
            path = path.replace(f"<string:{argument}>", f"{{{argument}}}")
            path = path.replace(f"<int:{argument}>", f"{{{argument}}}")
        for method in (rule.methods or set()) - IGNORED_METHODS:
            found.add((path, method.lower()))
    return found


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item
            if method in ("get", "put", "post", "delete", "patch")}


@pytest.fixture
def document(client) -> dict[str, Any]:
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def staff_token(session, clock, world) -> str:
    return api_token(session, clock, world, "staff")


def enrol(client, token: str, **changes: Any) -> dict[str, Any]:
    patient = changes.pop("patient", {})
    response = client.post(f"{API}/cases", json=enrol_body(**patient) | changes,
                           headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# ---------------------------------------------------------------- the document

def test_the_openapi_document_is_served_without_a_token_and_is_valid_openapi_3_1(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_api_route_is_documented_with_the_methods_it_serves(app, document):
    served, documented = served_routes(app), documented_routes(document)
    assert served, "no /api/v1 routes found"
    assert served - documented == set(), "served but not in openapi.json"
    assert documented - served == set(), "in openapi.json but not served"


def test_the_documentation_check_notices_a_route_added_without_documentation(app):
    def hidden() -> str:
        return "{}"

    app.add_url_rule(f"{API}/cases/<coi>/secret", "hidden", hidden, methods=["DELETE"])
    undocumented = served_routes(app) - documented_routes(openapi.document())
    assert undocumented == {("/cases/{coi}/secret", "delete")}


def test_the_served_document_is_the_one_the_code_describes(document):
    assert document == openapi.document()


# ---------------------------------------------------------------- answers match the schemas

def test_enrolment_and_case_answers_match_the_documented_case_schema(
        client, document, staff_token, session, clock, world):
    created = client.post(f"{API}/cases", json=enrol_body(), headers=bearer(staff_token))
    assert created.status_code == 201
    assert_as_documented(document, "/cases", "post", created)
    coi = created.get_json()["coi"]
    client.post(f"{API}/cases/{coi}/units", json={"kind": "sample"}, headers=bearer(staff_token))

    read = client.get(f"{API}/cases/{coi}", headers=bearer(staff_token))
    assert read.status_code == 200
    assert_as_documented(document, "/cases/{coi}", "get", read)
    assert read.get_json()["patient"]["mrn"] == "MRN-0001"
    assert [unit["kind"] for unit in read.get_json()["units"]] == ["sample"]

    # A reader at the manufacturing site gets the same documented shape, without the patient.
    coordinator = api_token(session, clock, world, "coordinator")
    remote = client.get(f"{API}/cases/{coi}", headers=bearer(coordinator))
    assert remote.status_code == 200
    assert_as_documented(document, "/cases/{coi}", "get", remote)
    assert "patient" not in remote.get_json()


def test_unit_answers_match_the_documented_unit_schema(client, document, staff_token):
    coi = enrol(client, staff_token)["coi"]
    registered = client.post(f"{API}/cases/{coi}/units", json={"kind": "apheresis_bag"},
                             headers=bearer(staff_token))
    assert registered.status_code == 201
    assert_as_documented(document, "/cases/{coi}/units", "post", registered)
    serial = registered.get_json()["serial"]
    assert registered.headers["Location"] == f"{API}/units/{serial}"

    read = client.get(f"{API}/units/{serial}", headers=bearer(staff_token))
    assert read.status_code == 200
    assert_as_documented(document, "/units/{serial}", "get", read)


def test_case_list_answer_matches_the_documented_schema(client, document, staff_token):
    enrol(client, staff_token)
    enrol(client, staff_token, patient={"mrn": "MRN-0002"})
    listed = client.get(f"{API}/cases", headers=bearer(staff_token))
    assert listed.status_code == 200
    assert_as_documented(document, "/cases", "get", listed)
    assert len(listed.get_json()["cases"]) == 2


@pytest.mark.parametrize("text", [
    CoiId("A9998", "26", "000001").text,
    CoiId("A9998", "26", "000001").unit("sample", 1).text,
    CoiId("A9998", "26", "000001").isbt_din(),
    GS1_DEMO,
], ids=["coi", "unit", "isbt128_din", "gs1"])
def test_parsed_identifier_answers_match_the_documented_schema(client, document, staff_token,
                                                               text):
    parsed = client.post(f"{API}/identifiers/parse", json={"text": text},
                         headers=bearer(staff_token))
    assert parsed.status_code == 200
    assert_as_documented(document, "/identifiers/parse", "post", parsed)


def test_refusals_match_the_documented_problem_schema(client, document, staff_token):
    invalid = client.post(f"{API}/cases", json={"site": "BOS"}, headers=bearer(staff_token))
    assert invalid.status_code == 422
    assert_as_documented(document, "/cases", "post", invalid)
    assert {e["field"] for e in invalid.get_json()["errors"]} == {
        "product", "manufacturing_site", "patient"}

    bad_check = client.post(f"{API}/identifiers/parse",
                            json={"text": with_wrong_check(CoiId("A9998", "26", "000001").text)},
                            headers=bearer(staff_token))
    assert bad_check.status_code == 422
    assert_as_documented(document, "/identifiers/parse", "post", bad_check)

    unknown = client.get(f"{API}/cases/{CoiId('A9998', '26', '0000ZZ').text}",
                         headers=bearer(staff_token))
    assert unknown.status_code == 404
    assert_as_documented(document, "/cases/{coi}", "get", unknown)

    anonymous = client.get(f"{API}/cases")
    assert anonymous.status_code == 401
    assert_as_documented(document, "/cases", "get", anonymous)


# ---------------------------------------------------------------- list filters

def listed(client, token: str, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"{API}/cases{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cases"]


@pytest.fixture
def three_cases(client, session, clock, world) -> dict[str, str]:
    """Cases at BOS (CARTX), BER (CARTX) and BOS (CARTY), enrolled a minute apart."""
    now = clock.now()
    masterdata.create_product(session=session, now=now, actor=None, code="CARTY",
                              name="CAR-T (other)", description="", reason="test")
    masterdata.add_route_version(session=session, now=now, actor=None, reason="test",
                                 definition=ROUTE.replace('product = "CARTX"', 'product = "CARTY"'))
    session.commit()
    staff = api_token(session, clock, world, "staff")
    outsider = api_token(session, clock, world, "outsider")
    cois = {"bos": enrol(client, staff)["coi"]}
    clock.advance(minutes=1)
    cois["ber"] = enrol(client, outsider, site="BER")["coi"]
    clock.advance(minutes=1)
    cois["bos_carty"] = enrol(client, staff, product="CARTY", patient={"mrn": "MRN-0002"})["coi"]
    return cois


@pytest.fixture
def coordinator_token(session, clock, world) -> str:
    return api_token(session, clock, world, "coordinator")


def test_case_list_shows_each_reader_only_their_sites_newest_first(client, three_cases,
                                                                  staff_token, coordinator_token):
    assert [c["coi"] for c in listed(client, coordinator_token)] == [
        three_cases["bos_carty"], three_cases["ber"], three_cases["bos"]]
    assert [c["coi"] for c in listed(client, staff_token)] == [
        three_cases["bos_carty"], three_cases["bos"]]


def test_case_list_filters_by_site_code(client, three_cases, coordinator_token):
    assert {c["coi"] for c in listed(client, coordinator_token, "?site=BER")} == {
        three_cases["ber"]}
    assert {c["site"] for c in listed(client, coordinator_token, "?site=BOS")} == {"BOS"}
    assert len(listed(client, coordinator_token, "?site=BOS")) == 2


def test_case_list_filters_by_product_code(client, three_cases, coordinator_token):
    assert [c["coi"] for c in listed(client, coordinator_token, "?product=CARTY")] == [
        three_cases["bos_carty"]]
    assert {c["coi"] for c in listed(client, coordinator_token, "?product=CARTX")} == {
        three_cases["bos"], three_cases["ber"]}
    assert [c["coi"] for c in listed(client, coordinator_token, "?product=CARTY&site=BER")] == []


def test_case_list_filters_by_state(client, three_cases, coordinator_token):
    assert len(listed(client, coordinator_token, "?state=enrolled")) == 3
    assert len(listed(client, coordinator_token, "?state=enrolled&site=BER")) == 1


def test_case_list_pages_with_limit_and_offset(client, three_cases, coordinator_token):
    everything = [c["coi"] for c in listed(client, coordinator_token)]
    first = [c["coi"] for c in listed(client, coordinator_token, "?limit=2")]
    rest = [c["coi"] for c in listed(client, coordinator_token, "?limit=2&offset=2")]
    assert first == everything[:2]
    assert rest == everything[2:]
    assert listed(client, coordinator_token, "?offset=3") == []
    assert len(listed(client, coordinator_token, "?limit=1")) == 1
    assert len(listed(client, coordinator_token, "?limit=500")) == 3


@pytest.mark.parametrize("query, field", [
    ("?limit=0", "limit"),
    ("?limit=501", "limit"),
    ("?limit=ten", "limit"),
    ("?offset=-1", "offset"),
    ("?state=shipped", "state"),
    ("?site=NOWHERE", "site"),
    ("?product=NOPE", "product"),
])
def test_case_list_refuses_a_bad_filter_and_names_it(client, document, three_cases,
                                                     coordinator_token, query, field):
    response = client.get(f"{API}/cases{query}", headers=bearer(coordinator_token))
    assert response.status_code == 422
    assert_as_documented(document, "/cases", "get", response)
    problem = response.get_json()
    assert [e["field"] for e in problem["errors"]] == [field]
    assert field in problem["detail"] or query.split("=")[1] in problem["detail"]


# ---------------------------------------------------------------- identifier parsing

def parse(client, token: str, text: str) -> Any:
    return client.post(f"{API}/identifiers/parse", json={"text": text}, headers=bearer(token))


def test_parsing_a_coi_identifier_gives_its_type_and_display_form(client, staff_token):
    coi = CoiId("A9998", "26", "000001")
    body = parse(client, staff_token, coi.text).get_json()
    assert body == {"type": "coi", "text": coi.text, "display": coi.display}


def test_parsing_a_unit_serial_names_its_case(client, staff_token):
    serial = CoiId("A9998", "26", "00000A").unit("drug_product_bag", 2)
    body = parse(client, staff_token, serial.text).get_json()
    assert body["type"] == "unit"
    assert body["coi"] == "A99982600000A" + CoiId("A9998", "26", "00000A").check
    assert (body["kind"], body["sequence"], body["text"]) == ("drug_product_bag", 2, serial.text)


def test_parsing_an_isbt_din_verifies_its_check(client, staff_token):
    coi = CoiId("A9998", "26", "000001")
    body = parse(client, staff_token, coi.isbt_din()).get_json()
    assert body["type"] == "isbt128_din"
    assert body["coi"] == coi.text
    assert body["check_verified"] is True


def test_parsing_a_gs1_element_string_lists_its_elements(client, staff_token):
    body = parse(client, staff_token, GS1_DEMO).get_json()
    assert body["type"] == "gs1"
    assert body["elements"] == [
        {"ai": "01", "value": "09504000059101"},
        {"ai": "21", "value": "12345678p901"},
        {"ai": "10", "value": "1234567p"},
        {"ai": "17", "value": "141120"},
        {"ai": "8200", "value": "http://www.gs1.org/demo/"},
    ]


def test_parsing_a_coi_with_a_wrong_check_character_is_refused_with_its_position(
        client, staff_token):
    response = parse(client, staff_token, with_wrong_check(CoiId("A9998", "26", "000001").text))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "bad_check"
    assert problem["position"] == 14
    assert "Check character" in problem["detail"]


def test_parsing_needs_a_token(client):
    response = client.post(f"{API}/identifiers/parse", json={"text": "A9998260000012"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


# ---------------------------------------------------------------- units

def test_a_unit_is_read_by_its_serial_with_its_case(client, staff_token):
    coi = enrol(client, staff_token)["coi"]
    registered = client.post(f"{API}/cases/{coi}/units", json={"kind": "sample"},
                             headers=bearer(staff_token)).get_json()
    response = client.get(f"{API}/units/{registered['serial']}", headers=bearer(staff_token))
    assert response.status_code == 200
    unit = response.get_json()
    assert unit["coi"] == coi
    assert unit["serial"] == registered["serial"]
    assert (unit["kind"], unit["sequence"], unit["state"]) == ("sample", 1, "registered")
    assert UnitSerial.parse(unit["serial"]).coi.text == coi


def test_a_unit_serial_with_a_wrong_check_character_is_refused_not_looked_up(client,
                                                                            staff_token):
    coi = enrol(client, staff_token)["coi"]
    serial = client.post(f"{API}/cases/{coi}/units", json={"kind": "sample"},
                         headers=bearer(staff_token)).get_json()["serial"]
    response = client.get(f"{API}/units/{with_wrong_check(serial)}", headers=bearer(staff_token))
    assert response.status_code == 422  # not the unit, and not "no such unit" (404)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "bad_check"
    assert problem["position"] == 17
    assert "serial" not in problem


def test_a_well_formed_serial_of_no_unit_is_not_found(client, staff_token):
    coi = enrol(client, staff_token)["coi"]
    missing = CoiId.parse(coi).unit("sample", 7).text
    response = client.get(f"{API}/units/{missing}", headers=bearer(staff_token))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
