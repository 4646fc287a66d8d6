"""The signed payload behind a label's QR code, and the verification link that carries it.

A label's QR holds `<base>/V/<token>`: the token is base32 of

    header (1 byte: version << 4 | kind) | key id (2) | label id (4) | identifier | signature (64)

where the identifier is the unit serial (16 data characters) or the COI identifier (13) packed
as a base-36 number (11 or 9 bytes). The signature covers a domain tag and everything before
it, so anyone with the installation's public key can check the label offline, and a single
changed byte anywhere fails. The URL is upper case so the QR can use alphanumeric mode (5.5
bits a character instead of 8): that keeps the symbol small enough for a 2x1 inch label.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT_VERSION = 1
DOMAIN = b"coi-label-v1\x00"  # a signature made for a label can never pass as anything else
KINDS = {"wristband": (0, 13, 9), "unit": (1, 16, 11)}  # kind: (code, characters, bytes)
_KIND_BY_CODE = {code: kind for kind, (code, _chars, _bytes) in KINDS.items()}
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SIGNATURE_BYTES = 64
_TOKEN = re.compile(r"/V/([A-Z2-7]{40,200})/?$", re.IGNORECASE)


class PayloadError(ValueError):
    """The token is not a label payload of this format, or its signature does not hold."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Claim:
    """What a label says about itself, and what its signature vouches for."""

    kind: str  # "unit" or "wristband"
    identifier: str  # data characters without check character: 16 (unit) or 13 (COI)
    label_id: int
    key_id: bytes  # 2 bytes


def key_id_of(public_key: Ed25519PublicKey) -> bytes:
    """The first two bytes of the SHA-256 of the raw public key."""
    return hashlib.sha256(public_bytes(public_key)).digest()[:2]


def public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign(claim: Claim, private_key: Ed25519PrivateKey) -> bytes:
    """The payload bytes: the claim, then the signature over it."""
    if claim.key_id != key_id_of(private_key.public_key()):
        raise ValueError("the claim names another key than the one signing it")
    body = _pack(claim)
    return body + private_key.sign(DOMAIN + body)


def assemble(claim: Claim, signature: bytes) -> bytes:
    """The payload bytes of a claim and a signature kept on record (no private key needed)."""
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError("an Ed25519 signature has 64 bytes")
    return _pack(claim) + signature


def encode_token(payload: bytes) -> str:
    return base64.b32encode(payload).decode().rstrip("=")


def verification_url(base_url: str, payload: bytes) -> str:
    """`<BASE>/V/<TOKEN>` in upper case (scheme and host are case-insensitive)."""
    return f"{base_url.rstrip('/').upper()}/V/{encode_token(payload)}"


def token_from_text(text: str) -> str | None:
    """The token in a scanned verification link (any host), or None if it is not one."""
    match = _TOKEN.search(text.strip())
    return match.group(1).upper() if match else None


def decode_token(token: str) -> bytes:
    cleaned = token.strip().upper()
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError) as exc:
        raise PayloadError("malformed", "This is not a label verification code.") from exc


def read_claim(payload: bytes) -> tuple[Claim, bytes, bytes]:
    """(claim, signed body, signature) from payload bytes, without checking the signature."""
    if len(payload) < 1 + 2 + 4 + 9 + SIGNATURE_BYTES:
        raise PayloadError("malformed", "This code is too short to be a label of ours.")
    header = payload[0]
    if header >> 4 != FORMAT_VERSION or (header & 0x0F) not in _KIND_BY_CODE:
        raise PayloadError("malformed", "This code is not in a label format we issue.")
    kind = _KIND_BY_CODE[header & 0x0F]
    _code, chars, size = KINDS[kind]
    body_length = 1 + 2 + 4 + size
    if len(payload) != body_length + SIGNATURE_BYTES:
        raise PayloadError("malformed", "This code has the wrong length for a label of ours.")
    body, signature = payload[:body_length], payload[body_length:]
    number = int.from_bytes(body[7:], "big")
    identifier = _base36(number, chars)
    if identifier is None:
        raise PayloadError("malformed", "This code does not hold a valid identifier.")
    claim = Claim(kind=kind, identifier=identifier, label_id=int.from_bytes(body[3:7], "big"),
                  key_id=body[1:3])
    return claim, body, signature


def verify(payload: bytes, keys_for: Callable[[bytes], Iterable[Ed25519PublicKey]]) -> Claim:
    """The claim, if one of the public keys `keys_for(key_id)` signed exactly these bytes.

    Raises PayloadError with code "malformed", "unknown_key" (not issued by this
    installation) or "bad_signature" (forged or altered)."""
    claim, body, signature = read_claim(payload)
    keys = list(keys_for(claim.key_id))
    if not keys:
        raise PayloadError("unknown_key", "This label was not issued by this installation: "
                                          "its signing key is unknown here.")
    for key in keys:
        try:
            key.verify(signature, DOMAIN + body)
            return claim
        except InvalidSignature:
            continue
    raise PayloadError("bad_signature", "The signature does not match: this label was forged "
                                        "or its code was altered.")


def _pack(claim: Claim) -> bytes:
    code, chars, size = KINDS[claim.kind]
    if len(claim.identifier) != chars or any(c not in _BASE36 for c in claim.identifier):
        raise ValueError(f"a {claim.kind} identifier has {chars} characters 0-9 A-Z")
    if not 0 < claim.label_id < 2**32:
        raise ValueError("label ids run from 1 to 2**32 - 1")
    if len(claim.key_id) != 2:
        raise ValueError("a key id has 2 bytes")
    return (bytes([FORMAT_VERSION << 4 | code]) + claim.key_id + claim.label_id.to_bytes(4, "big")
            + int(claim.identifier, 36).to_bytes(size, "big"))


def _base36(number: int, chars: int) -> str | None:
    digits = []
    for _ in range(chars):
        number, digit = divmod(number, 36)
        digits.append(_BASE36[digit])
    return None if number else "".join(reversed(digits))
