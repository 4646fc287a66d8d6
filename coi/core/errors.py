"""Domain errors: a code for machines, a sentence for people. Views turn them into a flash
message or an RFC 9457 problem+json answer; nothing here knows about HTTP beyond a status."""

from __future__ import annotations

import re


class DomainError(Exception):
    """`code` is for machines and stays the same; `title` says in words what happened (the
    heading of an error page, a problem's title); `message` says why and what to do."""

    code = "error"
    status = 400
    title = "Not done: the request was refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidInput(DomainError):
    """Input that does not fit; `errors` names each field and what is wrong with it."""

    code = "invalid_input"
    status = 422
    title = "Not done: something entered needs correcting"

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class NotFound(DomainError):
    """The title names what was looked for, from the message the services write ("No case
    ... that you may see." -> "No such case")."""

    code = "not_found"
    status = 404
    title = "Nothing found"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        found = _WHAT.match(message)
        if found:
            self.title = f"No such {found[1]}"


# What the services say they did not find, longest name first.
_WHAT = re.compile(r"No (?:such )?(?:active )?(logger file|role grant|user|site|token|alarm|"
                   r"shipment|case|unit|label)\b")


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    title = "Not allowed for you"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Not done: it clashes with what is already recorded"


class AuthenticationFailed(DomainError):
    code = "authentication_failed"
    status = 401
    title = "Not signed in: the login or token was not accepted"


class Throttled(DomainError):
    """Refused for now: `retry_after` says in how many seconds to try again (Retry-After)."""

    code = "throttled"
    status = 429
    title = "Too many attempts: wait before trying again"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
