"""The installation's signing key: one Ed25519 key signs every label's QR code and every
ledger checkpoint. Each public key is recorded the first time it signs and kept for ever
(table `label_key`, named when labels were its only use), so whatever an earlier key signed
still verifies after the key is rotated."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, col, select

from coi.labels import payload
from coi.models import LabelKey


@dataclass(frozen=True)
class Signer:
    """The installation's signing key, and the base of the verification links its labels carry."""

    private_key: Ed25519PrivateKey
    base_url: str

    @property
    def key_id(self) -> bytes:
        return payload.key_id_of(self.private_key.public_key())

    @property
    def public_key_text(self) -> str:
        return base64.urlsafe_b64encode(payload.public_bytes(self.private_key.public_key())).decode()


def register_key(*, session: Session, now: datetime, signer: Signer) -> LabelKey:
    """The signer's public key, recorded the first time it signs; kept for ever."""
    found = session.exec(select(LabelKey).where(LabelKey.public_key == signer.public_key_text)).first()
    if found:
        return found
    key = LabelKey(key_id=signer.key_id.hex(), public_key=signer.public_key_text,
                   first_used_at=now)
    session.add(key)
    session.flush()
    return key


def public_keys(*, session: Session) -> list[LabelKey]:
    return list(session.exec(select(LabelKey).order_by(col(LabelKey.first_used_at))))
