"""E-mail addresses of accounts: a practical check of their shape, nothing more (whether mail
arrives is learned by sending it). Alarm e-mail goes to these addresses, so a line break
(header injection), a space or an address too long for the column is refused here."""

from __future__ import annotations

MAX_LENGTH = 254  # RFC 5321's limit on a forward path, and the column's length
_LOCAL_MAX = 64


def email_problems(address: str | None) -> list[dict[str, str]]:
    """[] when `address` is empty (no e-mail) or looks like one: one "@", something before
    it, a domain with a dot and no empty label after it, no spaces or control characters,
    at most MAX_LENGTH characters. Otherwise one {"field": "email", "message": ...}."""
    if not address:
        return []
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    if (len(address) > MAX_LENGTH or not at or "@" in local or not local
            or len(local) > _LOCAL_MAX or len(labels) < 2 or not all(labels)
            or any(ch.isspace() or not ch.isprintable() for ch in address)):
        return [{"field": "email", "message": "Give an e-mail address like name@example.org "
                 f"(at most {MAX_LENGTH} characters, no spaces)."}]
    return []
