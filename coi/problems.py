"""Errors as people and machines see them: RFC 9457 problem+json for the API, a page for the
web UI. Never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from coi.auth import is_api_request
from coi.core.errors import DomainError, InvalidInput, Throttled
from coi.core.identifiers import IdentifierError
from coi.core.words import words
from coi.db import request_session
from coi.responses import problem

log = logging.getLogger(__name__)

def install(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(IdentifierError, _identifier_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def render(status: int, title: str, detail: str, code: str, **extra: Any) -> Any:
    _rollback()
    if is_api_request() or _asks_for_json():
        return problem(status, title, detail, code, **extra)
    return render_template("error.html", status=status, title=title, detail=detail,
                           errors=extra.get("errors", [])), status


def _asks_for_json() -> bool:
    """The scan page's scripts call JSON endpoints with the login cookie: they get problems
    as JSON too."""
    return request.accept_mimetypes.best == "application/json"


def _domain_error(error: DomainError) -> Any:
    extra = {"errors": error.errors} if isinstance(error, InvalidInput) and error.errors else {}
    extra |= getattr(error, "extra", {})  # what else the refusal knows (a file's columns)
    response = make_response(render(error.status, error.title, error.message, error.code, **extra))
    if isinstance(error, Throttled) and error.retry_after:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _identifier_error(error: IdentifierError) -> Any:
    return render(422, identifier_title(error.code), error.message, error.code,
                  **({"position": error.position} if error.position else {}))


def identifier_title(code: str) -> str:
    """What went wrong with a code, as a heading: "Code not accepted: wrong check character";
    a code that is not ours says so."""
    if code in ("product_barcode", "not_ours"):
        return "Not one of our labels"
    return f"Code not accepted: {words(code, 'refusal').lower()}"


# Werkzeug's names ("Method Not Allowed") say what HTTP refused, not what happened to the reader.
HTTP_TITLES = {
    400: "Not done: the request could not be read",
    401: "Not signed in",
    403: "Not allowed for you",
    404: "No such page",
    405: "Not possible here",
    413: "Request too large",
    415: "Not done: this kind of content is not accepted",
    429: "Too many requests: wait before trying again",
    500: "Something went wrong on our side",
    503: "Not available just now",
}


def _csrf_error(error: CSRFError) -> Any:
    return render(400, "Form expired", "The form was open too long or came from elsewhere; "
                  "reload the page and submit it again. Nothing was saved.", "csrf")


def _too_large(error: RequestEntityTooLarge) -> Any:
    limit = request.max_content_length  # the endpoint's own limit (handlers.upload_limit), else the app's
    if limit is None:
        return render(413, "Request too large", "The request is larger than this server accepts; "
                      "nothing was saved.", "too_large")
    return render(413, "Request too large", "The request is larger than this server accepts; nothing "
                  f"was saved. The limit here is {size_text(limit)}.", "too_large", max_bytes=limit)


def size_text(limit: int) -> str:
    """A size limit as people read it, exact in bytes: "104,857,600 bytes (100 MB)"."""
    if limit >= 1 << 20:
        return f"{limit:,} bytes ({limit / (1 << 20):.4g} MB)"
    if limit >= 1 << 10:
        return f"{limit:,} bytes ({limit / (1 << 10):.4g} KB)"
    return f"{limit:,} bytes"


def _http_error(error: HTTPException) -> Any:
    status = error.code or 500
    return render(status, HTTP_TITLES.get(status, error.name), error.description or error.name,
                  f"http_{status}")


def _unexpected(error: Exception) -> Any:
    log.exception("unexpected error")
    return render(500, HTTP_TITLES[500], "Something went wrong on our side; nothing was saved. "
                  "The error has been logged.", "internal")


def _rollback() -> None:
    try:
        request_session().rollback()
    except Exception:  # noqa: BLE001 - a broken connection must not hide the original error
        log.exception("rollback failed")
