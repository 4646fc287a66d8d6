"""What views and API handlers read from the app: the clock, the actor, the session, PHI keys.
Only these entry points read the clock; services are handed `now`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, g, request

from coi.core.access import Actor
from coi.core.errors import AuthenticationFailed, InvalidInput
from coi.core.phi import PhiCipher
from coi.db import request_session
from coi.services.labels import Signer

__all__ = ["actor", "cipher", "json_body", "label_signer", "now", "request_session"]


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


def json_body() -> Any:
    """The request's JSON body, or InvalidInput saying what is wrong with it."""
    if not request.is_json:
        raise InvalidInput("Send a JSON body with 'Content-Type: application/json'.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # the JSON decoder gives up on deep nesting: bad input, not a crash
        raise InvalidInput("The request body is nested too deeply; send a JSON object.") from None
    if data is None:
        raise InvalidInput("The request body is not valid JSON.")
    return data
