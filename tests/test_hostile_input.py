"""Hostile input (issue 14): ids no row can have, JSON nested past the decoder's limit, broken
and bomb images on the public verify page, file names of any characters, malformed e-mail
addresses, and free text on public pages. Each gets a clear answer (a 4xx with a sentence, or
the page with a message), never a 500, and nothing is stored from it.

CSRF is off in this module's app (test_access checks it on every form): here it would stop
the hostile input before it reaches the code under test."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import pytest
from flask import Flask
from PIL import Image
from sqlmodel import select

from coi.converters import BIG_ID_MAX, ROW_ID_MAX
from coi.core.access import SCOPES
from coi.core.emails import email_problems
from coi.core.errors import InvalidInput
from coi.core.filenames import content_disposition
from coi.core.vocabulary import REVOCATION_CATEGORIES, ROLES
from coi.models import LabelRevocation, LoggerFile, LoggerReading, User, coi_of
from coi.services import enrolment, labels, tokens, users
from coldchain import Unreadable, read
from coldchain.cli import main as coldchain_main
from tests.helpers import PASSWORD, bearer, count, csv_file, login, make_case, open_for

API = "/api/v1"
NUMERIC = re.compile(r"<(int|bigint)(\([^)]*\))?:(\w+)>")


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return app_config | {"WTF_CSRF_ENABLED": False}


@pytest.fixture
def everyone(session, clock, world) -> str:
    """The API token of `everyone`, a global administrator holding every role at BOS and MFG,
    with every scope: no permission check stops their requests before the code under test."""
    user = users.create_user(session=session, now=clock.now(), actor=None, username="everyone",
                             full_name="Every Role", password=PASSWORD, reason="test")
    for code in ("BOS", "MFG"):
        for role in ROLES:
            users.grant_role(session=session, now=clock.now(), actor=None, user_id=user.id,
                             site_id=world.sites[code].id, role=role, reason="test")
    users.set_global_admin(session=session, now=clock.now(), actor=None, user_id=user.id,
                           value=True, reason="test")
    token, _row = tokens.issue_token(session=session, now=clock.now(), actor=None, user_id=user.id,
                                     name="fuzzer", days=30, reason="test", scopes=SCOPES)
    session.commit()
    return token


def assert_no_500(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code}"
    assert "Traceback" not in response.get_data(as_text=True)


# ---------------------------------------------------------------- ids past what the database holds

def numeric_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(rule, method, converter) for every rule with a numeric argument, from the app's own
    URL map: a route added later is swept too."""
    found = []
    for rule in app.url_map.iter_rules():
        for match in NUMERIC.finditer(rule.rule):
            found += [(rule.rule, method, match.group(1))
                      for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    assert ("/shipments/<int:shipment_id>", "GET", "int") in found
    assert ("/labels/<bigint:label_id>/revoke", "POST", "bigint") in found
    return found


def with_id(rule: str, value: object) -> str:
    return NUMERIC.sub(str(value), rule)


def call(client, rule: str, method: str, value: object, token: str) -> Any:
    path = with_id(rule, value)
    if path.startswith(API):
        return client.open(path, method=method, headers=bearer(token), data=b"x")
    return client.open(path, method=method, data={
        "reason": "because", "category": "damaged", "site": "1", "active": "1", "serial": "LOG-1",
        "handoff": "dispatch", "shown": "2026-11-22T10:00:00", "output": "png", "comment": "c",
        "outcome": "accepted", "password": PASSWORD, "file": (io.BytesIO(b"x"), "x.csv")})


@pytest.mark.parametrize("value", [2**31, 2**63, 10**30, "9" * 5000, "\u0663"],
                         ids=["2^31", "2^63", "10^30", "5000 digits", "arabic-indic 3"])
def test_an_id_no_row_can_have_is_not_found_on_every_route(app, client, everyone, value):
    login(client, "everyone")
    answers = {}
    for rule, method, converter in numeric_routes(app):
        if converter == "bigint" and value == 2**31:
            continue  # a label id may be that large (next test)
        answers[f"{method} {rule}"] = call(client, rule, method, value, everyone).status_code
    assert {route: status for route, status in answers.items() if status != 404} == {}


def test_the_largest_id_a_column_holds_reaches_the_page_and_is_refused_there(app, client, everyone):
    login(client, "everyone")
    for rule, method, converter in numeric_routes(app):
        largest = BIG_ID_MAX if converter == "bigint" else ROW_ID_MAX
        response = call(client, rule, method, largest, everyone)
        assert_no_500(response, f"{method} {with_id(rule, largest)}")
        assert response.status_code in (302, 404, 422), f"{method} {rule}: {response.status_code}"


@pytest.mark.parametrize("value", [str(2**31), str(2**63), str(10**30), "9" * 5000, "-1", "1e3", " "])
def test_an_id_in_a_form_or_query_that_no_row_can_have_is_refused_clearly(client, world, everyone, value):
    login(client, "everyone")
    bos = world.sites["BOS"].id
    grant = client.post(f"/admin/users/{bos}/grants", data={"site": value, "role": "qa", "reason": "r"},
                        follow_redirects=True)
    assert grant.status_code == 200 and "Choose a site from the list" in grant.get_data(as_text=True)
    days = client.post("/account/tokens", data={"name": "n", "days": value, "scopes": "read",
                                                "reason": "r"}, follow_redirects=True)
    assert "730 days" in days.get_data(as_text=True)
    listed = client.get(f"/cases?site={quote(value)}&product={quote(value)}")
    assert listed.status_code == 422 and "filters take an id" in listed.get_data(as_text=True)
    api = client.get(f"{API}/cases?limit={quote(value)}&offset={quote(value)}", headers=bearer(everyone))
    assert api.status_code == 422 and api.get_json()["errors"][0]["field"] == "limit"


# ---------------------------------------------------------------- JSON nested too deeply

def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


DEEP = 100_000  # far past the decoder's recursion limit
JSON_OPERATIONS = ["/cases", "/cases/A999826000001X/units", "/scans", "/identifiers/parse"]


@pytest.fixture
def shipment(app, session, world, clock):
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    clock.advance(hours=2)
    return shipment


@pytest.mark.parametrize("path", JSON_OPERATIONS)
@pytest.mark.parametrize("body", [nested(DEEP), '{"a":' * DEEP + "1" + "}" * DEEP,
                                  '{"text": ' + nested(900) + "}"], ids=["array", "object", "900 deep"])
def test_json_nested_too_deeply_is_refused_as_invalid_input(client, everyone, path, body):
    response = client.post(API + path, data=body, headers=bearer(everyone)
                           | {"Content-Type": "application/json"})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("document", [
    '{"logger": "LOG-1", "readings": ' + nested(DEEP) + "}",
    '{"logger": "LOG-1", "readings": [{"at": "2026-11-22T10:00:00+01:00", "celsius": ' + nested(950) + "}]}",
    '{"type": "EPCISDocument", "epcisBody": ' + '{"a": ' * 950 + "1" + "}" * 950 + "}",
    '{"type": "EPCISDocument", "epcisBody": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}",
], ids=["readings nested", "a temperature nested 950 deep", "EPCIS 950 deep", "EPCIS nested"])
def test_a_logger_file_nested_too_deeply_is_refused_on_every_way_in(client, session, everyone, shipment,
                                                                    document, tmp_path):
    data = document.encode()
    answers = [
        client.post(f"{API}/shipments/{shipment.id}/readings", data=data,
                    headers=bearer(everyone) | {"Content-Type": "application/json"}),
        client.post(f"{API}/shipments/{shipment.id}/logger-files?filename=deep.json", data=data,
                    headers=bearer(everyone)),
    ]
    login(client, "everyone")
    for action in ("logger-files/preview", "logger-files"):
        answers.append(client.post(f"/shipments/{shipment.id}/{action}",
                                   headers={"Accept": "application/json"},
                                   data={"file": (io.BytesIO(data), "deep.json")}))
    for answer in answers:
        assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
        assert len(answer.get_json()["detail"]) < 500  # named, not copied back
    assert count(session, LoggerFile) == 0 and count(session, LoggerReading) == 0
    path = tmp_path / "deep.json"
    path.write_bytes(data)
    err = io.StringIO()
    assert coldchain_main(["inspect", str(path), "--logger", "LOG-1"], io.StringIO(), err) == 2
    assert "Refused" in err.getvalue()


def test_the_cold_chain_reader_refuses_deep_json_as_unreadable():
    with pytest.raises(Unreadable, match="nested too deeply"):
        read(io.BytesIO(('{"readings": ' + nested(DEEP) + "}").encode()), name="deep.json")


# ---------------------------------------------------------------- images on the public verify page

def png(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    return saved("PNG", mode, size)


def saved(kind: str, mode: str = "RGB", size: tuple[int, int] = (64, 64), **options: Any) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, kind, **options)
    return out.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_chunk(image: bytes, extra: bytes, *, after_pixels: bool) -> bytes:
    """A PNG with `extra` inserted after IHDR, or after the pixel data (before IEND)."""
    at = image.rindex(b"IEND") - 4 if after_pixels else 8 + 25
    return image[:at] + extra + image[at:]


INFLATES = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MB of text from 64 kB


def text_bomb(kind: bytes, after_pixels: bool) -> bytes:
    header = b"Comment\0\0" if kind == b"zTXt" else b"Comment\0\x01\0\0\0"
    return with_chunk(png(), chunk(kind, header + INFLATES), after_pixels=after_pixels)


def mpo() -> bytes:
    out, picture = io.BytesIO(), Image.new("RGB", (64, 64), "white")
    picture.save(out, "MPO", save_all=True, append_images=[picture.copy()])
    return out.getvalue()


REFUSED_PHOTOS: dict[str, Callable[[], bytes]] = {
    "truncated JPEG": lambda: saved("JPEG", size=(200, 200))[:300],
    "truncated PNG": lambda: png((300, 300))[:60],
    "PNG cut in its pixel data": lambda: png((300, 300))[:-30],
    "PNG zTXt bomb before the pixels": lambda: text_bomb(b"zTXt", False),
    "PNG zTXt bomb after the pixels": lambda: text_bomb(b"zTXt", True),
    "PNG iTXt bomb before the pixels": lambda: text_bomb(b"iTXt", False),
    "PNG iTXt bomb after the pixels": lambda: text_bomb(b"iTXt", True),
    "PNG iCCP bomb": lambda: with_chunk(png(), chunk(b"iCCP", b"icc\0\0" + INFLATES), after_pixels=False),
    "PNG declaring 144 megapixels": lambda: saved("PNG", "1", (12000, 12000)),
    "not an image": lambda: b"GIF89a? no, just text pretending\n" * 20,
    "an ICO icon": lambda: saved("ICO", size=(16, 16)),
    "SVG": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
}
READ_PHOTOS: dict[str, Callable[[], bytes]] = {
    "PNG of 1x1 pixel": lambda: png((1, 1)),
    "JPEG of 1x1 pixel": lambda: saved("JPEG", size=(1, 1)),
    "GIF": lambda: saved("GIF", "P"),
    "TIFF": lambda: saved("TIFF"),
    "TIFF, 16-bit grey": lambda: saved("TIFF", "I;16"),
    "TIFF, CMYK": lambda: saved("TIFF", "CMYK"),
    "WebP": lambda: saved("WEBP"),
    "phone JPEG with a second picture (MPO)": mpo,
    "PNG 30000x1": lambda: png((30000, 1), "L"),
}


def verify_photo(client, data: bytes, name: str = "label.png") -> Any:
    return client.post("/verify", data={"photo": (io.BytesIO(data), name)})


@pytest.mark.parametrize("name", REFUSED_PHOTOS)
def test_a_broken_or_hostile_photo_is_refused_on_the_verify_page(client, name):
    response = verify_photo(client, REFUSED_PHOTOS[name]())
    page = response.get_data(as_text=True)
    assert response.status_code == 422, page[:300]
    assert "The photo was not checked" in page and 'name="photo"' in page  # say why; try again
    assert re.search(r"damaged or cut short|not an image we can read|megapixels", page)


@pytest.mark.parametrize("name", READ_PHOTOS)
def test_an_odd_but_valid_image_is_read_and_holds_no_code(client, name):
    response = verify_photo(client, READ_PHOTOS[name]())
    assert response.status_code == 200
    assert "No verification code found" in response.get_data(as_text=True)


def test_a_post_without_a_photo_asks_for_one(client):
    response = client.post("/verify", data={})
    assert response.status_code == 422
    assert "Choose a photo of the label" in response.get_data(as_text=True)


# ---------------------------------------------------------------- file names of any characters

NAMES = ["a\r\nb.csv", "日本語.csv", "日本語", "..\\..\\x.csv", "../../etc/passwd", '"quoted".csv',
         "x" * 300 + ".csv", "<script>alert(1)</script>.csv", "tab\there.csv",
         "r\u00e9sum\u00e9.csv", "exe\u202egpj.csv", "a; filename=evil.exe", "100%.csv", "..."]


def assert_safe_disposition(header: str, name: str) -> None:
    assert header.isascii() and header.isprintable(), header
    plain = re.fullmatch(r'attachment; filename="([^"\\]*)"(?:; filename\*=UTF-8\'\'([^;\s]+))?', header)
    assert plain, header
    fallback, extended = plain.group(1), plain.group(2)
    assert fallback and not set(fallback) & set('/\\%"') and not fallback.startswith(".")
    shown = unquote(extended, errors="strict") if extended else fallback
    assert not re.search(r"[\x00-\x1f\x7f/\\\u202e]", shown), shown
    assert set(shown) - set("_") <= set(name) or shown.startswith("logger-file-"), (name, shown)


@pytest.mark.parametrize("name", NAMES)
def test_a_file_of_any_name_is_kept_as_named_shown_safely_and_downloads(client, session, world, clock,
                                                                         everyone, shipment, name):
    data = csv_file([5.0, 5.1, 5.2], start=shipment.opened_at)
    stored = client.post(f"{API}/shipments/{shipment.id}/logger-files?filename={quote(name)}", data=data,
                         headers=bearer(everyone))
    assert stored.status_code == 201, stored.get_data(as_text=True)[:300]
    file_id = stored.get_json()["file"]["id"]
    session.rollback()
    kept = session.get(LoggerFile, file_id).filename
    assert kept == name[:255]
    login(client, "everyone")
    page = client.get(f"/shipments/{shipment.id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    with client.get(f"/logger-files/{file_id}/raw") as raw:
        assert raw.status_code == 200 and raw.data == data
        assert_safe_disposition(raw.headers["Content-Disposition"], kept)


# As browsers send them: the name alone, a line break written %0D%0A.
@pytest.mark.parametrize("name", ["日本語.csv", "Ω ω.csv", "x" * 250 + ".csv", "a%0D%0Ab.csv"])
def test_a_file_of_any_name_uploads_from_the_shipment_page(client, session, everyone, shipment, name):
    login(client, "everyone")
    data = csv_file([4.0, 4.2], start=shipment.opened_at)
    done = client.post(f"/shipments/{shipment.id}/logger-files", headers={"Accept": "application/json"},
                       data={"file": (io.BytesIO(data), name)})
    assert done.status_code == 201, done.get_data(as_text=True)[:300]
    assert done.get_json()["file"]["filename"] == name
    with client.get(f"/logger-files/{done.get_json()['file']['id']}/raw") as raw:
        assert raw.status_code == 200 and raw.data == data


@pytest.mark.parametrize(("name", "header"), [
    ("log.csv", 'attachment; filename="log.csv"'),
    ("a\r\nb.csv", 'attachment; filename="a__b.csv"'),
    ("日本語.csv",
     "attachment; filename=\"logger-file-7.csv\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.csv"),
    ("r\u00e9sum\u00e9.csv", "attachment; filename=\"resume.csv\"; filename*=UTF-8''r%C3%A9sum%C3%A9.csv"),
    ("..\\..\\x.csv", 'attachment; filename="_.._x.csv"'),
    ('"quoted".csv', "attachment; filename=\"_quoted_.csv\"; filename*=UTF-8''%22quoted%22.csv"),
    ("...", 'attachment; filename="logger-file-7"'),
    ("../../etc/passwd", 'attachment; filename="_.._etc_passwd"'),
    ("日本語", "attachment; filename=\"logger-file-7\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E"),
    ("\ud800.csv", "attachment; filename=\"logger-file-7.csv\"; filename*=UTF-8''_.csv"),
    ("nul\x00.csv", "attachment; filename=\"nul_.csv\""),
])
def test_the_download_header_is_ascii_with_the_name_in_utf_8_beside_it(name, header):
    assert content_disposition(name, fallback="logger-file-7") == header


# ---------------------------------------------------------------- NUL, which PostgreSQL text refuses

def test_a_nul_character_in_any_field_is_refused_naming_the_field(client, session, everyone, shipment):
    api = bearer(everyone)
    answers = {
        "filename": client.post(f"{API}/shipments/{shipment.id}/logger-files?filename=a%00.csv",
                                data=b"x", headers=api),
        "site": client.get(f"{API}/cases?site=B%00S", headers=api),
        "text": client.post(f"{API}/identifiers/parse", json={"text": "A999\x00"}, headers=api),
        "scans.0.text": client.post(f"{API}/scans", headers=api, json={
            "step": "pickup", "scans": [{"text": "A999\x00"}], "idempotency_key": "k" * 12,
            "device_at": "2026-11-22T09:41:07-05:00"}),
        "username": client.post("/login", data={"username": "staff\x00", "password": PASSWORD}),
    }
    for field, answer in answers.items():
        assert answer.status_code == 422, (field, answer.status_code)
        text = answer.get_data(as_text=True)
        assert field in text and "NUL" in text, (field, text[:300])
    assert count(session, LoggerFile) == 0


# ---------------------------------------------------------------- e-mail addresses of accounts

@pytest.mark.parametrize("address", ["no-at-sign.example.org", "two@@example.org", "a@b@example.org",
                                     "@example.org", "name@", "name@localhost", "name@example.",
                                     "name@.org", "na me@example.org", "name@example.org\r\nBcc: x@y.org",
                                     "name\x00@example.org", "x" * 250 + "@example.org",
                                     "y" * 65 + "@example.org"])
def test_an_account_with_a_malformed_e_mail_address_is_not_created(client, session, clock, everyone, address):
    with pytest.raises(InvalidInput) as refused:
        users.create_user(session=session, now=clock.now(), actor=None, username="newcomer",
                          full_name="New Comer", password=PASSWORD, email=address, reason="test")
    assert {"field": "email"}.items() <= refused.value.errors[0].items()
    session.rollback()
    login(client, "everyone")
    page = client.post("/admin/users", data={"username": "newcomer", "full_name": "New Comer",
                                             "password": PASSWORD, "email": address, "reason": "test"})
    assert page.status_code == 422  # NUL is refused before the form is read (test above)
    assert re.search("e-mail address like|NUL character", page.get_data(as_text=True))
    session.rollback()
    assert session.exec(select(User).where(User.username == "newcomer")).first() is None


@pytest.mark.parametrize("address", [None, "", "ann@example.org", "ann.o'neil+coi@mail.hospital.example",
                                     "jürgen@bücher.example", "a@b.co"])
def test_a_usable_e_mail_address_is_taken(address):
    assert email_problems(address) == []


# ---------------------------------------------------------------- revocations on public pages

@pytest.fixture
def printed(app, session, world, clock):
    case = make_case(app, session, world, clock)
    coi = coi_of(case).text
    enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"), coi_text=coi,
                            kind="apheresis_bag")
    job = labels.print_set(session=session, now=clock.now(), actor=world.actor("staff"),
                           signer=app.extensions["coi.signer"], coi_text=coi, output="png", size="4x2",
                           include_wristband=False, reason=None)
    session.commit()
    return coi, job.rows[0].id, job.labels[0].qr.split("/V/")[1]


REASON = "Nurse <b>Jane Roe</b> spilled coffee on MRN 12345"


def test_a_revocation_is_public_as_its_category_and_never_its_reason(client, session, printed):
    coi, label_id, token = printed
    login(client, "staff")
    done = client.post(f"/labels/{label_id}/revoke",
                       data={"coi": coi, "category": "damaged", "reason": REASON}, follow_redirects=True)
    assert "revoked" in done.get_data(as_text=True)
    session.rollback()
    assert session.exec(select(LabelRevocation)).one().category == "damaged"
    staff_page = client.get(f"/cases/{coi}/labels").get_data(as_text=True)
    assert "damaged label" in staff_page and "Jane Roe" in staff_page and "<b>Jane" not in staff_page
    client.post("/logout")
    page = client.get(f"/V/{token}").get_data(as_text=True)
    assert "REVOKED" in page and "Revoked: damaged label" in page
    assert "Jane" not in page and "coffee" not in page and "12345" not in page


@pytest.mark.parametrize("category", ["", "torn by Jane", "DAMAGED"])
def test_a_revocation_without_a_category_from_the_list_is_refused(client, session, printed, category):
    coi, label_id, _token = printed
    login(client, "staff")
    page = client.post(f"/labels/{label_id}/revoke", follow_redirects=True,
                       data={"coi": coi, "category": category, "reason": REASON}).get_data(as_text=True)
    assert "Not revoked" in page and ", ".join(REVOCATION_CATEGORIES) in page
    assert count(session, LabelRevocation) == 0


def test_a_revocation_from_before_categories_says_revoked_alone(client, session, world, clock, printed):
    _coi, label_id, token = printed
    session.add(LabelRevocation(label_id=label_id, revoked_at=clock.now(), reason=REASON, category=None,
                                revoked_by_id=world.actor("qa").user_id))
    session.commit()
    page = client.get(f"/V/{token}").get_data(as_text=True)
    assert "REVOKED" in page and re.search(r"<dd>Revoked ·", page) and "Jane" not in page


def test_the_revoke_form_offers_every_category(client, printed):
    coi, _label_id, _token = printed
    login(client, "staff")
    page = client.get(f"/cases/{coi}/labels").get_data(as_text=True)
    assert all(f'<option value="{value}">{words}</option>' in page
               for value, words in REVOCATION_CATEGORIES.items())


def test_a_readings_body_is_read_as_json_once_not_echoed(client, everyone, shipment):
    body = json.dumps({"logger": "LOG-1", "readings": [{"at": "x" * 100_000, "celsius": 5}]})
    answer = client.post(f"{API}/shipments/{shipment.id}/readings", data=body,
                         headers=bearer(everyone) | {"Content-Type": "application/json"})
    assert answer.status_code == 422 and len(answer.get_data()) < 5_000
