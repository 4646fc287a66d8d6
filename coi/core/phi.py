"""Protected health information: encrypted at rest with rotatable keys.

PHI (name, date of birth, medical record number) is serialised to JSON and encrypted with
Fernet (AES-128-CBC + HMAC-SHA256). `MultiFernet` encrypts with the first configured key and
decrypts with any of them, so a new key is put first, `flask coi phi rotate` re-encrypts
every row, and the old key can then be dropped from configuration.

Uniqueness of the MRN per site is kept with a keyed hash (HMAC-SHA256 under a separate
index key), because ciphertexts are randomised and cannot be compared.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED = "phi:"  # record values that are encrypted PHI start with this


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    name: str
    birth_date: date
    mrn: str


class PhiKeyError(RuntimeError):
    """Stored PHI cannot be decrypted with any configured key."""


class PhiCipher:
    def __init__(self, keys: list[str], index_key: str) -> None:
        if not keys:
            raise ValueError("at least one PHI key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._index_key = _index_key_bytes(index_key)

    def encrypt(self, identity: PatientIdentity) -> str:
        plain = json.dumps(
            {"name": identity.name, "birth_date": identity.birth_date.isoformat(), "mrn": identity.mrn},
            separators=(",", ":"),
        )
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> PatientIdentity:
        try:
            plain = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise PhiKeyError(
                "patient data cannot be decrypted with the configured PHI keys: "
                "was a key removed before `flask coi phi rotate` ran?"
            ) from exc
        return PatientIdentity(
            name=plain["name"], birth_date=date.fromisoformat(plain["birth_date"]), mrn=plain["mrn"]
        )

    def encrypt_text(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt_text(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise PhiKeyError("a PHI value cannot be decrypted with any configured key") from exc

    def seal(self, value: object) -> str:
        """A PHI value for a record that is not itself encrypted (the audit trail): its text,
        encrypted, marked as sealed."""
        return SEALED + self.encrypt_text(str(value))

    def unseal(self, value: str | None) -> str | None:
        """A record's value as readable text: sealed PHI decrypted (or said to be under a
        retired key), anything else as it is. Only for readers allowed to see the PHI."""
        if value is None or not value.startswith(SEALED):
            return value
        try:
            return self.decrypt_text(value[len(SEALED):])
        except PhiKeyError:
            return "[encrypted under a retired key]"

    def rotate(self, token: str) -> str:
        """The same PHI, re-encrypted under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise PhiKeyError("a PHI record cannot be decrypted with any configured key") from exc

    def mrn_index(self, mrn: str) -> str:
        return hmac.new(self._index_key, normalise_mrn(mrn).encode(), hashlib.sha256).hexdigest()


def normalise_mrn(mrn: str) -> str:
    """MRNs compare without case and surrounding space: 'mrn-001 ' and 'MRN-001' are one patient."""
    return mrn.strip().upper()


def _index_key_bytes(index_key: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(index_key + "=" * (-len(index_key) % 4))
    except (ValueError, TypeError):
        raw = b""
    if len(raw) < 16:
        raw = index_key.encode()
    if len(raw) < 16:
        raise ValueError("the PHI index key must be at least 16 bytes")
    return raw
