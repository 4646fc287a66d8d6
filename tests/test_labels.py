"""Labels as records: printing, reprints, revocation, and public verification."""

from __future__ import annotations

import base64
import io
import socket
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from sqlmodel import select

from coi.app import create_app
from coi.core.errors import Forbidden
from coi.labels import payload
from coi.labels.writers import WRITERS
from coi.models import Label, LabelRevocation, coi_of
from coi.services import enrolment, labels
from tests.helpers import login, make_case, post_form

PHI = ("Ann Example", "1970-05-01", "M-1")


@pytest.fixture
def case(app, session, world, clock):
    made = make_case(app, session, world, clock)
    coi = coi_of(made).text
    for kind in ("apheresis_bag", "sample"):
        enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                coi_text=coi, kind=kind)
    session.commit()
    return coi


def print_set(app, session, world, clock, coi, *, persona="staff", reason=None, wristband=True):
    job = labels.print_set(session=session, now=clock.now(), actor=world.actor(persona),
                           signer=app.extensions["coi.signer"], coi_text=coi,
                           output="png", size="4x2", include_wristband=wristband, reason=reason)
    session.commit()
    return job


def token_of(job, index=0) -> str:
    token = payload.token_from_text(job.labels[index].qr)
    assert token
    return token


def test_printing_a_set_records_one_label_per_unit_and_the_wristband(app, session, world, clock,
                                                                      case):
    job = print_set(app, session, world, clock, case)
    assert [(row.kind, row.template) for row in job.rows] == [
        ("unit", "unit-4x2"), ("unit", "unit-4x2"), ("wristband", "wristband")]
    assert all(row.template_version >= 1 and row.printed_at == clock.now() for row in job.rows)
    assert [label.datamatrix for label in job.labels][-1] == case
    assert all(label.qr.startswith("HTTPS://COI.EXAMPLE.ORG/V/") for label in job.labels)
    assert not any(label.reprint for label in job.labels)


def test_printing_again_prints_the_same_labels_not_reprints(app, session, world, clock, case):
    # Before issue 15 a second print made a REPRINT of the whole set and left the first set
    # valid beside it; now the same records come out again (tests/test_labels_one_valid.py).
    first = print_set(app, session, world, clock, case)
    clock.advance(minutes=5)
    again = print_set(app, session, world, clock, case)
    assert not any(label.reprint for label in again.labels)
    assert [row.id for row in again.rows] == [row.id for row in first.rows]


def test_a_genuine_label_verifies_on_the_public_page_without_patient_data(
        app, client, session, world, clock, case):
    job = print_set(app, session, world, clock, case)
    response = client.get(f"/V/{token_of(job)}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "GENUINE" in page and "NOT GENUINE" not in page
    assert job.labels[0].identifier_display in page
    assert all(text not in page for text in PHI)


def test_the_verification_link_works_in_lower_case_too(app, client, session, world, clock, case):
    job = print_set(app, session, world, clock, case)
    assert "GENUINE" in client.get(f"/v/{token_of(job).lower()}").get_data(as_text=True)


def test_every_single_changed_byte_of_a_payload_fails_verification(app, session, world, clock,
                                                                   case):
    job = print_set(app, session, world, clock, case)
    raw = payload.decode_token(token_of(job))
    for position in range(len(raw)):
        altered = bytearray(raw)
        altered[position] ^= 0x01
        result = labels.verify(session=session, token=payload.encode_token(bytes(altered)))
        assert not result.genuine, f"byte {position} changed and still genuine"


def test_a_forged_label_signed_by_another_key_says_so_plainly(client, session, world, clock, case):
    label = session.exec(select(Label)).first()
    assert label is None
    stranger = Ed25519PrivateKey.generate()
    claim = payload.Claim("unit", "A999826000001A01", 77, payload.key_id_of(stranger.public_key()))
    page = client.get(f"/V/{payload.encode_token(payload.sign(claim, stranger))}")
    text = page.get_data(as_text=True)
    assert "NOT GENUINE" in text and "not issued by this installation" in text


def test_a_revoked_label_says_revoked_with_its_category_never_its_reason(app, client, session, world,
                                                                         clock, case):
    job = print_set(app, session, world, clock, case)
    labels.revoke(session=session, now=clock.now(), actor=world.actor("staff"),
                  label_id=job.rows[0].id, category="damaged", reason="bag label torn during thaw")
    session.commit()
    page = client.get(f"/V/{token_of(job)}").get_data(as_text=True)
    assert "REVOKED" in page and "Revoked: damaged label" in page and "GENUINE" not in page
    assert "torn" not in page  # free text stays with signed-in users


def test_revocations_are_append_only_and_once(app, session, world, clock, case):
    job = print_set(app, session, world, clock, case)
    labels.revoke(session=session, now=clock.now(), actor=world.actor("qa"),
                  label_id=job.rows[0].id, category="misprinted", reason="QA: wrong template")
    session.commit()
    with pytest.raises(Exception, match="already revoked"):
        labels.revoke(session=session, now=clock.now(), actor=world.actor("staff"),
                      label_id=job.rows[0].id, category="other", reason="again")
    session.rollback()
    assert len(session.exec(select(LabelRevocation)).all()) == 1


def test_a_courier_may_not_print_labels(app, session, world, clock, case):
    with pytest.raises(Exception) as refused:
        print_set(app, session, world, clock, case, persona="courier")
    assert isinstance(refused.value, Forbidden) or "may see" in str(refused.value)


def test_labels_printed_before_a_key_rotation_still_verify(app, app_config, session, world,
                                                           clock, case):
    old = print_set(app, session, world, clock, case)
    new_key = base64.urlsafe_b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()
    rotated = create_app(app_config | {"INSTALLATION_SIGNING_KEY": new_key})
    enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                            coi_text=case, kind="sample")  # its label is signed by the new key
    with rotated.app_context():
        new = print_set(rotated, session, world, clock, case)
        client = rotated.test_client()
        assert "GENUINE" in client.get(f"/V/{token_of(old)}").get_data(as_text=True)
        assert "GENUINE" in client.get(f"/V/{token_of(new)}").get_data(as_text=True)
        keys = client.get("/labels/keys.json").get_json()
    rotated.extensions["coi.engine"].dispose()
    assert len(keys["keys"]) == 2 and keys["current_key_id"] == new.rows[0].key_id


def _label_photo(job) -> bytes:
    out = io.BytesIO()
    WRITERS["png"](job.labels[:1], out, 300)
    image = Image.open(io.BytesIO(out.getvalue())).convert("L")
    photo = io.BytesIO()
    image.resize((image.width * 2 // 3, image.height * 2 // 3)).save(photo, "JPEG", quality=85)
    return photo.getvalue()


def upload(client, data: bytes, name: str = "label.jpg"):
    return post_form(client, "/verify", "/verify", {"photo": (io.BytesIO(data), name)})


def test_a_photo_of_a_genuine_label_verifies_and_its_codes_agree(app, client, session, world,
                                                                 clock, case):
    job = print_set(app, session, world, clock, case)
    page = upload(client, _label_photo(job)).get_data(as_text=True)
    assert "GENUINE" in page and "NOT GENUINE" not in page
    assert "Data Matrix names the same identifier" in page


def test_a_photo_that_is_not_an_image_is_refused_clearly(client):
    response = upload(client, b"%PDF-1.4 not an image at all", "label.pdf")
    assert response.status_code == 422
    assert "not an image we can read" in response.get_data(as_text=True)


def test_a_decompression_bomb_is_refused_before_it_is_decoded(client):
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000), 1).save(bomb, "PNG")  # 144 megapixels, a few kB
    assert len(bomb.getvalue()) < 100_000
    response = upload(client, bomb.getvalue(), "bomb.png")
    assert response.status_code == 422
    assert "megapixels" in response.get_data(as_text=True)


def test_an_oversized_upload_is_refused_with_413(app, client):
    app.config["LABEL_UPLOAD_MAX_BYTES"] = 50_000
    response = upload(client, b"\xff" * 60_000)
    assert response.status_code == 413


def test_the_case_page_prints_a_pdf_and_records_it(client, session, world, case):
    login(client, "staff")
    response = post_form(client, f"/cases/{case}/labels", f"/cases/{case}/labels",
                         {"output": "pdf", "size": "2x1", "wristband": "1"})
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    session.rollback()
    assert {row.output for row in session.exec(select(Label))} == {"pdf"}


def test_zpl_goes_to_the_sites_zebra_printer_on_port_9100(app, client, session, world, case):
    received = bytearray()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def printer() -> None:
        connection, _ = server.accept()
        with connection:
            while chunk := connection.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=printer)
    thread.start()
    app.config["ZPL_PRINTERS"] = {"BOS": server.getsockname()}
    login(client, "staff")
    response = post_form(client, f"/cases/{case}/labels", f"/cases/{case}/labels",
                         {"output": "zpl300", "size": "4x2", "wristband": "1", "send": "printer"})
    thread.join(timeout=10)
    server.close()
    assert response.status_code == 302
    assert received.count(b"^XA") == 3 and received.count(b"^XZ") == 3
    assert "sent to the printer" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_an_unreachable_printer_prints_and_records_nothing(app, client, session, world, case):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    address = closed.getsockname()
    closed.close()  # nothing listens there now
    app.config["ZPL_PRINTERS"] = {"BOS": address}
    login(client, "staff")
    response = post_form(client, f"/cases/{case}/labels", f"/cases/{case}/labels",
                         {"output": "zpl203", "size": "2x1", "wristband": "1", "send": "printer"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nothing was printed" in page and "cannot be reached" in page
    session.rollback()
    assert session.exec(select(Label)).all() == []


def test_the_preview_is_marked_and_carries_no_signed_code(client, session, world, case):
    login(client, "staff")
    response = client.get(f"/cases/{case}/labels/preview.png?size=2x1")
    assert response.mimetype == "image/png"
    from coi.labels.decoders import decode_image

    texts = {symbol.text for symbol in decode_image(Image.open(io.BytesIO(response.data)))}
    assert texts == {labels.PREVIEW_QR, labels.PREVIEW_DATAMATRIX}  # no identifier, no token
    with pytest.raises(ValueError):
        from coi.core.identifiers import parse_scan

        parse_scan(labels.PREVIEW_DATAMATRIX)  # a scanner at the bedside refuses it
    session.rollback()
    assert session.exec(select(Label)).all() == []


def test_public_keys_are_served(app, client, session, world, clock, case):
    print_set(app, session, world, clock, case)
    keys = client.get("/labels/keys.json").get_json()
    assert keys["algorithm"] == "Ed25519"
    [key] = keys["keys"]
    public = base64.urlsafe_b64decode(key["public_key"])
    assert len(public) == 32 and key["key_id"] == keys["current_key_id"]
