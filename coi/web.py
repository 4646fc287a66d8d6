"""What views and API handlers read from the app (the clock, the actor, the session, PHI
keys), and the one way a form's action is carried out. Only these entry points read the
clock; services are handed `now`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import current_app, flash, g, redirect, request
from werkzeug.wrappers import Response

from coi.converters import ROW_ID_MAX
from coi.core.access import Actor
from coi.core.errors import AuthenticationFailed, DomainError, Forbidden, InvalidInput, NotFound
from coi.core.phi import PhiCipher
from coi.db import request_session
from coi.services.keys import Signer

__all__ = ["actor", "carry_out", "cipher", "json_body", "now", "request_session", "signer",
           "whole_number"]

T = TypeVar("T")


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


def signer() -> Signer:
    """The installation's signing key (labels, ledger checkpoints)."""
    return current_app.extensions["coi.signer"]  # type: ignore[no-any-return]


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


def whole_number(text: str | None, *, field: str, message: str, high: int = ROW_ID_MAX) -> int:
    """A form's or query's whole number (an id, by default up to the largest row id), or
    InvalidInput naming `field` with `message`. A number past `high` is refused here: handed
    to the database it would be a 500 (see coi/converters.py)."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)) or int(text) > high:
        raise InvalidInput(message, [{"field": field, "message": message}])
    return int(text)


def carry_out(action: Callable[[], T], *, back: str, refused: str,
              done: str | Callable[[T], str], then: str | Callable[[T], str] | None = None,
              catch: type[DomainError] = DomainError) -> Response:
    """Carry out a form's action in the request's transaction, then send the browser to a
    page (post, redirect, get). When `action` raises a domain error (`catch`), nothing is
    kept: the transaction is rolled back and "`refused`: <why>" is shown on `back`. Otherwise
    the transaction is committed and `done` (or `done(result)`) is shown on `then` (or
    `then(result)`; default `back`). A 403 or 404 (Forbidden, NotFound), and errors other
    than `catch`, are answered as such by the error handlers."""
    db = request_session()
    try:
        result = action()
    except (Forbidden, NotFound):
        db.rollback()
        raise  # not a refusal of this input: the page says 403 or 404 whatever was typed
    except catch as error:
        db.rollback()
        flash(f"{refused}: {error.message}", "error")
        return redirect(back)
    db.commit()
    flash(done(result) if callable(done) else done, "success")
    target = then(result) if callable(then) else then
    return redirect(target or back)
