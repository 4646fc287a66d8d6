"""Problem answers (RFC 9457) as JSON: one shape for every refusal of the API and of the
pages' JSON calls. No other module of the app is imported here, so that the error handlers
(`coi.problems`) and the login's own refusals (`coi.signed_out`) share it without a cycle."""

from __future__ import annotations

from typing import Any

from flask import jsonify

PROBLEM_TYPE = "urn:coi:problem:"


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> Any:
    body = {"type": PROBLEM_TYPE + code, "title": title, "status": status, "detail": detail,
            "code": code, **extra}
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="coi"'
    return response
