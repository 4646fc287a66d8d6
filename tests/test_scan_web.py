"""Scans over HTTP: the device API (idempotency keys, device time, documented answers), the
scan page's JSON endpoint and camera decoding, and the case timeline that shows it all."""

from __future__ import annotations

import html
import io
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import func, select

from coi.labels.layout import render_image
from coi.models import Alarm, CustodyEvent, coi_of, serial_of
from coi.services import enrolment, labels
from tests.helpers import PASSWORD, Flow, api_token, assert_as_documented, bearer, login, make_case

API = "/api/v1"
DEVICE_AT = "2026-11-22T03:55:00-05:00"


@pytest.fixture
def case(app, session, world, clock) -> dict[str, str]:
    made = make_case(app, session, world, clock)
    bag = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                  coi_text=coi_of(made).text, kind="apheresis_bag")
    session.commit()
    return {"coi": coi_of(made).text, "bag": serial_of(bag).text}


@pytest.fixture
def document(client) -> dict[str, Any]:
    return client.get(f"{API}/openapi.json").get_json()


def body(step: str | None, *texts: str, key: str = "key-00000001", **extra: Any) -> dict[str, Any]:
    return {"step": step, "scans": [{"text": t} for t in texts], "idempotency_key": key,
            "device_at": DEVICE_AT, "device": "handheld-3", **extra}


def scan(client, token: str, payload: dict[str, Any]) -> Any:
    return client.post(f"{API}/scans", json=payload, headers=bearer(token))


def test_a_device_records_a_collection_with_signatures_through_the_api(
        client, session, clock, world, case, document):
    token = api_token(session, clock, world, "staff")
    response = scan(client, token, body("collect", case["coi"], case["bag"], password=PASSWORD,
                                        verifiers=[{"username": "staff2",
                                                    "password": PASSWORD}]))
    assert response.status_code == 200, response.get_json()
    assert_as_documented(document, "/scans", "post", response)
    answer = response.get_json()
    assert answer["accepted"] and answer["recorded"] and answer["completes_step"]
    assert answer["next"]["step"] == "pack" and answer["event"]["kind"] == "step"
    event = session.exec(select(CustodyEvent).where(CustodyEvent.seq == answer["event"]["seq"])).one()
    assert event.device == "handheld-3" and event.device_at.isoformat() == "2026-11-22T08:55:00+00:00"


def test_a_scan_sent_twice_with_one_key_is_recorded_once(client, session, clock, world, case,
                                                        document):
    token = api_token(session, clock, world, "staff")
    first = scan(client, token, body("pack", case["bag"], key="offline-queue-0042"))
    again = scan(client, token, body("pack", case["bag"], key="offline-queue-0042"))
    assert first.status_code == again.status_code == 200
    assert_as_documented(document, "/scans", "post", again)
    assert again.get_json()["replayed"] and not first.get_json()["replayed"]
    assert again.get_json()["event"] == first.get_json()["event"]
    assert session.exec(select(func.count()).select_from(CustodyEvent)
                        .where(CustodyEvent.kind == "scan_refused")).one() == 1


def test_a_key_reused_for_another_scan_is_a_documented_conflict(client, session, clock, world,
                                                               case, document):
    token = api_token(session, clock, world, "staff")
    scan(client, token, body("pack", case["bag"], key="reused-key-0001"))
    response = scan(client, token, body("pack", case["coi"], key="reused-key-0001"))
    assert response.status_code == 409
    assert_as_documented(document, "/scans", "post", response)
    assert response.get_json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(("change", "field"), [
    ({"device_at": "2026-11-22T09:00:00"}, "device_at"),
    ({"device_at": 1763800000}, "device_at"),
    ({"idempotency_key": "short"}, "idempotency_key"),
    ({"scans": []}, "scans"),
    ({"scans": [{"text": "x" * 501}]}, "scans.0.text"),
    ({"scans": [{"text": "A", "method": "telepathy"}]}, "scans.0.method"),
    ({"verifiers": [{"username": "a", "password": "b"}] * 4}, "verifiers"),
    ({"colour": "red"}, "colour"),
])
def test_bad_scan_input_is_refused_naming_the_field_and_records_nothing(
        client, session, clock, world, case, document, change, field):
    token = api_token(session, clock, world, "staff")
    before = session.exec(select(func.count()).select_from(CustodyEvent)).one()
    response = scan(client, token, body("pack", case["bag"]) | change)
    assert response.status_code == 422
    assert_as_documented(document, "/scans", "post", response)
    assert field in [e["field"] for e in response.get_json()["errors"]]
    session.rollback()
    assert session.exec(select(func.count()).select_from(CustodyEvent)).one() == before


def test_a_refused_scan_answers_with_its_reasons_and_is_on_the_timeline(client, session, clock,
                                                                        world, case):
    token = api_token(session, clock, world, "staff")
    response = scan(client, token, body("pack", case["bag"]))  # before collection
    answer = response.get_json()
    assert response.status_code == 200 and not answer["accepted"] and answer["recorded"]
    assert "out_of_order" in [r["code"] for r in answer["refusals"]]
    login(client, "staff")
    page = client.get(f"/cases/{case['coi']}").get_data(as_text=True)
    assert "Refused scan (Pack fresh shipment (2-8 C))" in page
    assert "is out of order: the next step is" in page


def test_a_handoff_through_the_api_passes_custody_only_on_receipt(client, session, clock, world,
                                                                  case):
    staff, courier = (api_token(session, clock, world, p) for p in ("staff", "courier"))
    signed = {"password": PASSWORD,
              "verifiers": [{"username": "staff2", "password": PASSWORD}]}
    for step, token, extra, key in [("collect", staff, signed, "k-collect-1"),
                                    ("pack", staff, {}, "k-pack-0001"),
                                    ("pickup", staff, {}, "k-give-0001")]:
        texts = (case["coi"], case["bag"]) if step == "collect" else (case["bag"],)
        answer = scan(client, token, body(step, *texts, key=key, **extra)).get_json()
        assert answer["accepted"], answer
    assert answer["phase"] == "give" and not answer["completes_step"]
    unit = client.get(f"{API}/units/{case['bag']}", headers=bearer(staff)).get_json()
    assert unit["state"] == "pickup"
    received = scan(client, courier, body("pickup", case["bag"], key="k-take-0001")).get_json()
    assert received["accepted"] and received["phase"] == "receive" and received["completes_step"]
    case_doc = client.get(f"{API}/cases/{case['coi']}", headers=bearer(staff)).get_json()
    assert case_doc["units"][0]["custodian_site"] == "DEP"


def test_the_scan_page_judges_each_code_as_json_with_the_login_cookie(client, case):
    login(client, "staff")
    page = client.get(f"/scan?case={case['coi']}")
    assert page.status_code == 200
    token = _csrf_attr(page.get_data(as_text=True))
    response = client.post("/scan/judge", json=body(None, case["bag"], partial=True),
                           headers={"X-CSRFToken": token, "Accept": "application/json"})
    answer = response.get_json()
    assert answer["accepted"] and not answer["recorded"] and answer["step"] == "collect"
    assert answer["checklist"] == [{"item": "wristband", "label": "wristband", "done": False},
                                   {"item": "apheresis_bag", "label": "apheresis bag", "done": True}]


def test_the_scan_page_without_its_csrf_token_is_refused_as_json(client, case):
    login(client, "staff")
    response = client.post("/scan/judge", json=body(None, case["bag"], partial=True),
                           headers={"Accept": "application/json"})
    assert response.status_code == 400 and response.mimetype == "application/problem+json"


def test_another_patients_wristband_at_the_bedside_raises_a_critical_alarm(
        app, client, session, clock, world, case):
    other = coi_of(make_case(app, session, world, clock, mrn="M-9", name="Other Patient")).text
    token = api_token(session, clock, world, "staff")
    answer = scan(client, token, body("collect", other, case["bag"], password=PASSWORD,
                                      verifiers=[{"username": "staff2",
                                                  "password": PASSWORD}])).get_json()
    assert not answer["accepted"]
    assert [(a["code"], a["severity"]) for a in answer["alarms"]] == [("other_case", "critical")]
    assert session.exec(select(Alarm)).one().code == "other_case"


def test_a_camera_frame_of_a_printed_label_is_decoded_on_the_server(app, client, session, clock,
                                                                    world, case):
    job = labels.print_set(session=session, now=clock.now(), actor=world.actor("staff"),
                           signer=app.extensions["coi.signer"], coi_text=case["coi"],
                           output="png", size="2x1", include_wristband=False, reason=None)
    session.commit()
    frame = io.BytesIO()
    render_image(job.labels[0], 203).save(frame, "PNG")
    frame.seek(0)
    login(client, "staff")
    token = _csrf_attr(client.get("/scan").get_data(as_text=True))
    response = client.post("/scan/decode", data={"frame": (frame, "frame.png")},
                           headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert response.status_code == 200
    assert response.get_json()["texts"] == [case["bag"]]


def test_a_camera_frame_keeps_gs1_separators_raw(client, world, realdata):
    picture = realdata / "barcodes/zxing-cpp/datamatrix-1/gs1-figure-4.15.1-2-32x32.png"
    login(client, "staff")
    token = _csrf_attr(client.get("/scan").get_data(as_text=True))
    with picture.open("rb") as handle:
        response = client.post("/scan/decode", data={"frame": (handle, picture.name)},
                               headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert response.get_json()["texts"] == [picture.with_suffix(".txt").read_text()]


def test_a_frame_that_is_not_an_image_is_refused_clearly(client, world):
    login(client, "staff")
    token = _csrf_attr(client.get("/scan").get_data(as_text=True))
    response = client.post("/scan/decode", data={"frame": (io.BytesIO(b"not a picture"), "x.jpg")},
                           headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert response.status_code == 422 and "image" in response.get_json()["detail"].lower()


def _csrf_attr(html: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', html)
    assert found, "the scan page carries no CSRF token"
    return found.group(1)


def test_the_scan_page_for_a_thawed_bag_shows_the_thaw_to_infusion_clock(app, client, session,
                                                                          world, clock):
    flow = Flow(app, session, world, clock)
    flow.until("thaw")
    login(client, "staff")
    page = client.get(f"/scan?case={flow.coi.text}").get_data(as_text=True)
    waiting = json.loads(html.unescape(re.search(r'data-waiting="([^"]+)"', page).group(1)))
    assert waiting["title"] == "Bedside infusion" and waiting["since"] == "thaw"
    session.refresh(flow.case)
    assert waiting["due_at"] == (flow.case.last_step_at + timedelta(hours=1.5)).isoformat()
    assert waiting["due_local"].endswith(" EST")  # Boston, where the reader works


def test_a_lone_code_with_a_wrong_check_character_is_refused_and_kept_in_the_audit_trail(
        client, session, clock, world, case):
    from coi.models import AuditEntry

    token = api_token(session, clock, world, "staff")
    wrong = case["bag"][:-1] + ("0" if case["bag"][-1] != "0" else "1")
    response = scan(client, token, body("pack", wrong))
    assert response.status_code == 422 and response.get_json()["code"] == "no_case_named"
    session.rollback()
    entry = session.exec(select(AuditEntry).where(AuditEntry.entity == "scan")).one()
    assert entry.action == "refuse" and wrong in entry.new_value and "bad_check" in entry.reason
    assert session.exec(select(func.count()).select_from(CustodyEvent)
                        .where(CustodyEvent.kind == "scan_refused")).one() == 0  # no guess


def test_the_checklist_names_a_drug_product_bag_in_words(app, client, session, world, clock):
    flow = Flow(app, session, world, clock)
    flow.until("thaw")
    token = api_token(session, clock, world, "staff")
    answer = scan(client, token, body("infuse", flow.product, partial=True)).get_json()
    assert answer["checklist"] == [{"item": "wristband", "label": "wristband", "done": False},
                                   {"item": "drug_product_bag", "label": "drug product bag",
                                    "done": True}]


# ---------------------------------------------------------------- the camera reads every code we parse

def _symbol(text: str, symbology: str, scale: int = 8) -> Any:
    """A clean picture of one symbol, as a phone held square to it would see it."""
    import zxingcpp
    from PIL import Image

    barcode = zxingcpp.create_barcode(text, getattr(zxingcpp.BarcodeFormat, symbology))
    return Image.fromarray(barcode.to_image(scale=scale, add_quiet_zones=True)).convert("L")


def _frame(*pictures: Any) -> io.BytesIO:
    """The pictures side by side on a white frame, as PNG."""
    from PIL import Image

    width = sum(p.width for p in pictures) + 40 * (len(pictures) + 1)
    frame = Image.new("L", (width, max(p.height for p in pictures) + 80), 255)
    x = 40
    for picture in pictures:
        frame.paste(picture, (x, 40))
        x += picture.width + 40
    data = io.BytesIO()
    frame.save(data, "PNG")
    data.seek(0)
    return data


def _decode(client: Any, frame: io.BytesIO, name: str = "frame.png") -> Any:
    token = _csrf_attr(client.get("/scan").get_data(as_text=True))
    return client.post("/scan/decode", data={"frame": (frame, name)},
                       headers={"X-CSRFToken": token, "Accept": "application/json"})


@pytest.mark.parametrize("symbology", ["DataMatrix", "QRCode", "Code128"])
def test_the_camera_reads_a_unit_serial_in_any_symbology_we_print_or_meet(client, world, case, symbology):
    login(client, "staff")
    answer = _decode(client, _frame(_symbol(case["bag"], symbology))).get_json()
    assert answer["texts"] == [case["bag"]]
    assert answer["codes"] == [{"text": case["bag"], "symbology": symbology}]


def test_with_several_codes_in_view_the_identity_code_comes_first(client, world, case):
    # A product's EAN-13 and a GS1 Digital Link QR beside the bag's Data Matrix: the page takes
    # the first text, the bag's serial.
    login(client, "staff")
    frame = _frame(_symbol("4006381333931", "EAN13", 4),
                   _symbol("https://id.example.com/01/09506000134352", "QRCode"),
                   _symbol(case["bag"], "DataMatrix"))
    answer = _decode(client, frame).get_json()
    assert answer["texts"][0] == case["bag"]
    assert {code["symbology"] for code in answer["codes"]} == {"DataMatrix", "QRCode", "EAN13"}


def test_the_camera_endpoint_reads_what_the_pipeline_reads_on_every_real_picture(client, world, realdata):
    """The read rate through the endpoint, every symbology allowed, on the real pictures with
    an expected text (tests/test_decoding_realdata.py reports the pipeline's own rate: the
    endpoint must not read fewer)."""
    from PIL import Image

    from coi.labels import decode_image

    login(client, "staff")
    pictures = sorted(path for path in (realdata / "barcodes").rglob("*")
                      if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
                      and path.with_suffix(".txt").is_file())
    by_pipeline, by_endpoint, labels_qr = 0, 0, 0
    for path in pictures:
        expected = path.with_suffix(".txt").read_bytes().decode("utf-8", errors="replace")
        image = Image.open(path)
        image.load()
        by_pipeline += expected in [s.text for s in decode_image(image)]
        with path.open("rb") as handle:
            answer = _decode(client, io.BytesIO(handle.read()), path.name).get_json()
        by_endpoint += expected in answer.get("texts", [])
        labels_qr += "qrcode" in str(path.parent).lower() and expected in answer.get("texts", [])
    print(f"\ncamera endpoint: {by_endpoint}/{len(pictures)} real pictures read "
          f"({by_endpoint / len(pictures):.1%}), the pipeline alone {by_pipeline}; "
          f"QR photos read: {labels_qr}")
    assert by_endpoint == by_pipeline and labels_qr > 0
