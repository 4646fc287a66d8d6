"""Plain words on every page (issue 17): codes said as words, the rule that fired as rows,
times in the reader's zone with the zone named, durations in words, error titles that say
what happened, and a code that is not ours called what it is."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from coi.core.display import duration_words, localise_text, zone_abbreviation
from coi.core.identifiers import CoiId, IdentifierError, parse_scan
from coi.core.words import rule_rows, words
from coi.models import coi_of
from coi.services import alarms
from tests.helpers import Flow, api_token, bearer, login, make_case

API = "/api/v1"


def scan_body(step: str, *texts: str, **extra: object) -> dict[str, object]:
    return {"step": step, "scans": [{"text": t} for t in texts], "idempotency_key": f"key-{texts[0]}",
            "device": "handheld-3", "device_at": "2026-11-22T03:55:00-05:00", **extra}
EAN_13 = "4006381333931"  # a retail product's barcode, check digit right


# ---------------------------------------------------------------- the vocabulary


@pytest.mark.parametrize(("code", "vocabulary", "said"), [
    ("in_progress", "case_state", "In progress"),
    ("site_staff", "role", "Site staff"),
    ("infuse", "step", "Bedside infusion"),
    ("infuse", "unit_state", "infused"),
    ("collect", "unit_state", "collected"),
    ("bad_check", "refusal", "Wrong check character"),
    ("courier_depot", "site_kind", "courier depot"),
    ("in_transit", "shipment_state", "In transit"),
    ("accepted_with_deviation", "outcome", "accepted under a deviation"),
    ("thaw_window", "alarm_code", "Thaw window missed"),
])
def test_a_code_reads_as_words(code, vocabulary, said):
    assert words(code, vocabulary) == said


def test_a_code_nobody_named_yet_reads_without_underscores():
    assert words("brand_new_state", "case_state") == "brand new state"
    assert words("brand_new_step", "unit_state") == "after brand new step"


@pytest.mark.parametrize(("span", "said"), [
    (timedelta(minutes=43200), "30 days"),
    (timedelta(days=1, hours=4, minutes=20), "1 day 4 h"),
    (timedelta(hours=2, minutes=5), "2 h 5 min"),
    (timedelta(hours=2), "2 h"),
    (timedelta(minutes=45), "45 min"),
    (timedelta(seconds=20), "less than 1 min"),
    (timedelta(minutes=-90), "1 h 30 min"),
])
def test_a_duration_reads_in_words(span, said):
    assert duration_words(span) == said


def test_utc_times_in_a_stored_text_are_said_in_the_readers_zone():
    text = "Thawed at 2026-11-22 06:17 UTC, the window closed at 2026-11-22 07:47 UTC."
    assert localise_text(text, "America/New_York") == (
        "Thawed at 2026-11-22 01:17 EST, the window closed at 2026-11-22 02:47 EST.")
    assert localise_text(text, "Europe/Berlin").count("CET") == 2
    assert localise_text(text, "UTC") == text


def test_the_rule_that_fired_reads_as_rows_with_local_times_and_durations():
    rule = {"rule": "deadline.thaw_window", "route": "CARTX", "route_version": 2,
            "coi": "A999826000001Z", "due_at": "2026-11-22T07:47:00+00:00",
            "step": {"name": "infuse", "title": "Bedside infusion", "roles": ["site_staff"],
                     "site_kind": "treatment", "scan": ["wristband", "drug_product_bag"],
                     "verifiers": 1, "max_hours": 1.5},
            "low": 2.0, "high": 8.0, "stability_budget_minutes": 43200}
    rows = dict(rule_rows(rule, "America/New_York"))
    assert rows["Rule"] == "Deadline: Thaw window missed"
    assert rows["Route"] == "CARTX version 2"
    assert rows["Case"] == "A9998 26 000001 Z"
    assert rows["Due by"] == "2026-11-22 02:47 EST"
    assert rows["Step"] == ("Bedside infusion: done by Site staff at a treatment site, scanning "
                            "patient wristband and drug product bag, 1 verifier, within 1 h 30 min")
    assert rows["Allowed range"] == "2 to 8 °C"
    assert rows["Stability budget"] == "30 days"


# ---------------------------------------------------------------- codes that are not ours


def test_a_product_barcode_is_called_one_not_a_short_identifier():
    with pytest.raises(IdentifierError) as refused:
        parse_scan(EAN_13)
    assert refused.value.code == "product_barcode"
    assert refused.value.message.startswith("This is a product barcode (EAN-13), not one of our labels")
    assert "14 characters" not in refused.value.message


@pytest.mark.parametrize(("text", "name"), [("036000291452", "UPC-A"), ("96385074", "EAN-8"),
                                            ("00012345600012", "GTIN-14"), ("]E04006381333931", "EAN-13")])
def test_other_retail_barcodes_are_named_too(text, name):
    with pytest.raises(IdentifierError, match=rf"product barcode \({name}\)"):
        parse_scan(text)


def test_an_identifier_of_ours_made_of_digits_is_still_ours():
    coi = CoiId("12345", "26", "000001")
    assert parse_scan(coi.text) == coi


def test_a_scanned_product_barcode_is_refused_in_those_words(app, client, session, world, clock):
    case = make_case(app, session, world, clock)
    token = api_token(session, clock, world, "staff")
    answer = client.post(f"{API}/scans", headers=bearer(token), json=scan_body(
        "collect", EAN_13, case=coi_of(case).text, partial=True)).get_json()
    refusal = next(r for r in answer["refusals"] if r["code"] == "product_barcode")
    assert not answer["accepted"] and refusal["title"] == "A product barcode"
    assert "product barcode (EAN-13), not one of our labels" in refusal["message"]


def test_a_lone_product_barcode_names_no_case_and_says_what_it_is(client, session, world, clock):
    token = api_token(session, clock, world, "staff")
    response = client.post(f"{API}/scans", headers=bearer(token),
                           json=scan_body("collect", EAN_13))
    problem = response.get_json()
    assert response.status_code == 422 and problem["code"] == "no_case_named"
    assert "This is a product barcode (EAN-13), not one of our labels" in problem["detail"]


def test_a_gs1_barcode_without_our_identifiers_is_named(app, client, session, world, clock):
    case = make_case(app, session, world, clock)
    token = api_token(session, clock, world, "staff")
    answer = client.post(f"{API}/scans", headers=bearer(token), json=scan_body(
        "collect", "(01)04006381333931(10)AB12", case=coi_of(case).text, partial=True)).get_json()
    refusal = next(r for r in answer["refusals"] if r["code"] == "not_ours")
    assert refusal["message"].startswith(
        "This is a GS1 barcode (GTIN 04006381333931, batch AB12), not one of our labels")


# ---------------------------------------------------------------- pages


def test_case_pages_show_states_roles_and_kinds_in_words(app, client, session, world, clock):
    flow = Flow(app, session, world, clock)
    flow.until("collect")
    login(client, "staff")
    listing = client.get("/cases").get_data(as_text=True)
    assert ">In progress</span>" in listing and ">in_progress<" not in listing
    page = client.get(f"/cases/{flow.coi.text}").get_data(as_text=True)
    assert ">In progress</span>" in page
    assert '<span class="badge">collected</span>' in page  # the bag, after its collection
    assert "Site staff at a collection site" in page and "site_staff" not in page
    home = client.get("/").get_data(as_text=True)
    assert ">Site staff</span>" in home


def test_an_alarm_shows_its_utc_times_in_the_readers_zone(app, client, session, world, clock):
    case = make_case(app, session, world, clock)
    summary = "Thawed product not infused: the window closed at 2026-11-22 07:47 UTC."
    alarm = alarms.raise_alarm(
        session=session, now=clock.now(), kind="deadline", code="thaw_window", severity="critical",
        summary=summary, case_id=case.id,
        rule={"rule": "deadline.thaw_window", "due_at": "2026-11-22T07:47:00+00:00"})
    session.commit()
    login(client, "staff")  # works in Boston
    page = client.get(f"/alarms/{alarm.id}").get_data(as_text=True)
    assert "the window closed at 2026-11-22 02:47 EST." in page and "07:47 UTC" not in page
    assert "<th scope=\"row\">Due by</th><td>2026-11-22 02:47 EST</td>" in page
    assert ">Critical</span> Thaw window missed</h1>" in page
    inbox = client.get("/alarms").get_data(as_text=True)
    assert "the window closed at 2026-11-22 02:47 EST." in inbox
    assert alarms.visible_alarm(session=session, actor=world.actor("staff"),
                                alarm_id=alarm.id).summary == summary  # the evidence stays


def test_error_pages_say_what_happened(client, world):
    login(client, "staff")
    missing = client.get("/alarms/99999")
    assert missing.status_code == 404 and "<h1>No such alarm</h1>" in missing.get_data(as_text=True)
    refused = client.get("/alarms?state=bogus")
    assert refused.status_code == 422
    assert "<h1>Not done: something entered needs correcting</h1>" in refused.get_data(as_text=True)
    nowhere = client.get("/no-such-page")
    assert nowhere.status_code == 404 and "<h1>No such page</h1>" in nowhere.get_data(as_text=True)


def test_api_problems_keep_their_codes_with_titles_in_words(client, session, world, clock):
    token = api_token(session, clock, world, "staff")
    problem = client.get(f"{API}/cases/A999826999999Z", headers=bearer(token)).get_json()
    assert problem["code"] in ("not_found", "bad_check")
    assert problem["title"] in ("No such case", "Code not accepted: wrong check character")


def test_the_scan_answer_names_the_site_and_the_step_since(app, client, session, world, clock):
    flow = Flow(app, session, world, clock)
    flow.until("collect")
    token = api_token(session, clock, world, "staff")
    answer = client.post(f"{API}/scans", headers=bearer(token), json=scan_body(
        "pack", flow.bag)).get_json()  # recorded: the next step counts from it
    assert answer["site"] == "BOS" and answer["site_name"] == "Boston Hospital"
    assert answer["next"]["since"] == "pack"
    assert answer["next"]["since_title"] == "Pack fresh shipment (2-8 C)"


def test_a_time_in_a_summary_written_before_is_read_as_utc(session):
    # The pattern the sweeps and the cold-chain messages wrote: the instant is UTC's.
    at = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert localise_text(f"at {at:%Y-%m-%d %H:%M} UTC", "Europe/Berlin") == "at 2026-07-01 14:00 CEST"


def test_the_dashboard_says_time_left_in_days(app, client, session, world, clock):
    make_case(app, session, world, clock)  # its collection is due 30 days after enrolment
    login(client, "staff")
    page = client.get("/dashboard").get_data(as_text=True)
    assert '<td class="left">30 days</td>' in page


def test_an_uploads_alarms_are_told_in_the_uploaders_zone(app, client, session, world, clock):
    from tests.helpers import csv_file, open_for

    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    clock.advance(hours=3)
    data = csv_file([5.0] + [12.0] * 13 + [5.0], start=shipment.opened_at)  # an hour too warm
    token = api_token(session, clock, world, "courier")  # works at the depot, New York time
    answer = client.post(f"{API}/shipments/{shipment.id}/logger-files?filename=a.csv", data=data,
                         headers=bearer(token)).get_json()
    alarm = next(a for a in answer["alarms"] if a["code"] == "excursion_single")
    assert " UTC" in alarm["summary"]  # the evidence, as written
    assert " UTC" not in alarm["summary_local"] and " EST" in alarm["summary_local"]


def test_a_step_is_called_by_its_routes_title_where_the_route_is_known():
    titles = {"pack": "Pack fresh shipment (2-8 C)", "freeze": "Cryopreservation"}
    assert words("pack", "step", titles) == "Pack fresh shipment (2-8 C)"
    assert words("pack", "step") == "Packing"
    assert words("freeze", "unit_state", titles) == "after Cryopreservation"


def test_refusals_name_roles_as_people_say_them(app, client, session, world, clock):
    from coi.core.words import in_sentence

    assert (in_sentence("qa", "role"), in_sentence("site_staff", "role")) == ("QA", "site staff")
    case = make_case(app, session, world, clock)
    token = api_token(session, clock, world, "staff")
    answer = client.post(f"{API}/scans", headers=bearer(token), json=scan_body(
        "release", coi_of(case).text, case=coi_of(case).text, partial=True)).get_json()
    refusal = next(r for r in answer["refusals"] if r["code"] == "wrong_role")
    assert "by QA;" in refusal["message"] and "qa" not in refusal["message"]


def test_the_case_page_shows_times_in_the_readers_own_zone(app, client, session, world, clock):
    # A Boston case read by the coordinator at manufacturing: every time in the reader's zone,
    # named; the treating site's zone is said beside its name.
    flow = Flow(app, session, world, clock)
    flow.until("collect")
    login(client, "coordinator")
    page = client.get(f"/cases/{flow.coi.text}").get_data(as_text=True)
    reader = world.actor("coordinator").timezone
    staff = world.actor("staff").timezone
    assert reader != staff
    shown = set(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d ([A-Z]{3,4}|[+-]\d\d)", page))
    assert shown and shown == {zone_abbreviation(clock.now(), reader)}
