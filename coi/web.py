"""What views and API handlers read from the app: the clock, the actor, the session, PHI keys.
Only these entry points read the clock; services are handed `now`."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, g

from coi.access import Actor
from coi.db import request_session
from coi.errors import AuthenticationFailed
from coi.phi import PhiCipher
from coi.services.labels import Signer

__all__ = ["actor", "cipher", "label_signer", "now", "request_session"]


def now() -> datetime:
    clock = current_app.extensions["coi.clock"]
    return clock.now()  # type: ignore[no-any-return]


def actor() -> Actor:
    current: Actor | None = g.get("actor")
    if current is None:
        raise AuthenticationFailed("Log in first.")
    return current


def cipher() -> PhiCipher:
    return current_app.extensions["coi.phi"]  # type: ignore[no-any-return]


def label_signer() -> Signer:
    return current_app.extensions["coi.label_signer"]  # type: ignore[no-any-return]
