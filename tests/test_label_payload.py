"""The signed payload in a label's QR code."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coi.labels import payload

KEY = Ed25519PrivateKey.from_private_bytes(b"label-signing-key-for-tests-only")
KEY_ID = payload.key_id_of(KEY.public_key())


def keys(key_id: bytes):
    return [KEY.public_key()] if key_id == KEY_ID else []


@pytest.mark.parametrize(("kind", "identifier"), [("unit", "A999826000001A01"),
                                                   ("unit", "Z9999990ZZZZZZD99"[:16]),
                                                   ("wristband", "A99982600000Z"),
                                                   ("wristband", "1000000000000")])
def test_a_claim_survives_signing_encoding_and_verification(kind, identifier):
    claim = payload.Claim(kind, identifier, 4_000_000_000, KEY_ID)
    url = payload.verification_url("https://coi.example.org/", payload.sign(claim, KEY))
    assert url.startswith("HTTPS://COI.EXAMPLE.ORG/V/")
    assert set(url) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")  # QR alphanumeric
    token = payload.token_from_text(url)
    assert payload.verify(payload.decode_token(token), keys) == claim


def test_the_link_for_a_unit_fits_a_small_qr():
    claim = payload.Claim("unit", "A999826000001A01", 2**32 - 1, KEY_ID)
    url = payload.verification_url("https://coi.example.org", payload.sign(claim, KEY))
    assert len(url) <= 160  # QR version 9 at error correction M holds 180 alphanumeric chars


def test_a_signature_from_another_key_with_the_same_id_is_refused():
    other = Ed25519PrivateKey.generate()
    body = payload.sign(payload.Claim("unit", "A999826000001A01", 5,
                                      payload.key_id_of(other.public_key())), other)
    forged = body[:1] + KEY_ID + body[3:]  # claims our key id
    with pytest.raises(payload.PayloadError) as refused:
        payload.verify(forged, keys)
    assert refused.value.code == "bad_signature"


def test_an_unknown_key_is_named_as_not_ours():
    other = Ed25519PrivateKey.generate()
    body = payload.sign(payload.Claim("wristband", "A99982600000Z", 5,
                                      payload.key_id_of(other.public_key())), other)
    with pytest.raises(payload.PayloadError, match="not issued by this installation"):
        payload.verify(body, keys)


@pytest.mark.parametrize("text", ["", "HELLO", "ZZZZ" * 30, "=" * 10, "A" * 200])
def test_text_that_is_no_payload_is_refused_without_guessing(text):
    with pytest.raises(payload.PayloadError) as refused:
        payload.verify(payload.decode_token(text), keys)
    assert refused.value.code == "malformed"


@pytest.mark.parametrize(("text", "found"), [
    ("https://coi.example.org/V/" + "A" * 60, "A" * 60),
    ("HTTP://127.0.0.1:5000/V/" + "B2" * 40 + "\r\n", "B2" * 40),
    ("https://coi.example.org/v/" + "a" * 60, "A" * 60),
    ("https://elsewhere.example/X/" + "A" * 60, None),
    ("A999826000001A011", None),
])
def test_verification_links_are_recognised_in_scanned_text(text, found):
    assert payload.token_from_text(text) == found


def test_signing_refuses_a_claim_that_names_another_key():
    with pytest.raises(ValueError, match="another key"):
        payload.sign(payload.Claim("unit", "A999826000001A01", 1, b"\x00\x00"), KEY)


@pytest.mark.parametrize(("kind", "identifier", "label_id"), [
    ("unit", "A999826000001A0", 1), ("wristband", "A999826000001A01", 1),
    ("unit", "a999826000001A01", 1), ("unit", "A999826000001A01", 0),
    ("unit", "A999826000001A01", 2**32)])
def test_a_malformed_claim_is_not_signed(kind, identifier, label_id):
    with pytest.raises(ValueError):
        payload.sign(payload.Claim(kind, identifier, label_id, KEY_ID), KEY)
