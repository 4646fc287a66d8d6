"""The password throttle, wired into the web app (coi/throttle.py has the counting).
`install` makes it from the settings; before each view runs, the throttle is attached to
the request's database session, where users.authenticate and the signing services find it."""

from __future__ import annotations

import logging

from flask import Flask, current_app

from coi import throttle
from coi.db import request_session

THROTTLE = "coi.throttle"

log = logging.getLogger(__name__)


def install(app: Flask) -> None:
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
    app.before_request(_before_view)


def the_throttle() -> throttle.Throttle:
    return current_app.extensions[THROTTLE]  # type: ignore[no-any-return]


def _before_view() -> None:
    throttle.attach(request_session(), the_throttle())
