"""Domain errors: a code for machines, a sentence for people. Views turn them into a flash
message or an RFC 9457 problem+json answer; nothing here knows about HTTP beyond a status."""

from __future__ import annotations


class DomainError(Exception):
    code = "error"
    status = 400
    title = "Request refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidInput(DomainError):
    """Input that does not fit; `errors` names each field and what is wrong with it."""

    code = "invalid_input"
    status = 422
    title = "Invalid input"

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    title = "Not allowed"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict"


class AuthenticationFailed(DomainError):
    code = "authentication_failed"
    status = 401
    title = "Authentication failed"


class Throttled(DomainError):
    """Refused for now: `retry_after` says in how many seconds to try again (Retry-After)."""

    code = "throttled"
    status = 429
    title = "Too many attempts"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
