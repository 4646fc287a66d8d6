"""The password throttle and the rate limits, wired into the web app (coi/throttle.py has the
counting). `install` makes them from the settings; before each view runs, the throttle is
attached to the request's database session (where users.authenticate and the signing
services find it), and the rate limits are counted: the public verify pages per address,
the API per token. A request over its limit is answered 429 with Retry-After."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, request

from coi import throttle
from coi.core.errors import Throttled
from coi.db import request_session
from coi.web import now

THROTTLE = "coi.throttle"
RATE_LIMITS = "coi.rate_limits"
# endpoint -> the rate limit its callers are counted against, per address
PER_ADDRESS = {"labels.verify": "verify", "labels.verify_photo": "verify"}

log = logging.getLogger(__name__)


def install(app: Flask) -> None:
    """Call after coi.auth.install: the per-token limit needs to know the token."""
    config = app.config
    if not config["RATE_LIMIT_STORAGE"] and config["MODE"] == "production":
        log.warning("COI_RATE_LIMIT_STORAGE is not set: each web worker counts failed passwords "
                    "and requests on its own. Set it to a Redis URL, e.g. "
                    "redis://127.0.0.1:6379/0, to share the counters.")
    counters = throttle.counters_from_url(config["RATE_LIMIT_STORAGE"],
                                          config["RATE_LIMIT_KEY_PREFIX"])
    app.extensions[THROTTLE] = throttle.Throttle(counters, throttle.Policy(
        account_free=int(config["LOGIN_MAX_FAILURES"]),
        address_free=int(config["LOGIN_ADDRESS_MAX_FAILURES"]),
        max_delay=int(config["LOGIN_MAX_DELAY_SECONDS"]),
        forget=int(config["LOGIN_FAILURES_KEPT_MINUTES"]) * 60))
    app.extensions[RATE_LIMITS] = {
        "verify": throttle.RateLimit(counters, "verify", int(config["VERIFY_REQUESTS_PER_MINUTE"])),
        "token": throttle.RateLimit(counters, "token", int(config["API_TOKEN_REQUESTS_PER_MINUTE"])),
    }
    app.before_request(_before_view)


def the_throttle() -> throttle.Throttle:
    return current_app.extensions[THROTTLE]  # type: ignore[no-any-return]


def _before_view() -> None:
    throttle.attach(request_session(), the_throttle())
    limit = PER_ADDRESS.get(request.endpoint or "")
    if limit:
        _count(limit, f"address:{request.remote_addr or '-'}")
    actor = g.get("actor")
    if actor is not None and actor.token_id is not None:
        _count("token", str(actor.token_id))


def _count(limit: str, caller: str) -> None:
    wait = current_app.extensions[RATE_LIMITS][limit].hit(caller, now=now())
    if wait:
        raise Throttled(f"Too many requests: wait {throttle.seconds(wait)}.", retry_after=wait)
