"""GET /metrics: the Prometheus metrics (coi/metrics.py), for the monitoring server only.

With COI_METRICS_TOKEN set, the scraper sends it as a bearer token, from anywhere. Without
it, only a client on this machine is answered, and only when no proxy forwarded the request:
a reverse proxy on the same host would otherwise make every outside client look local."""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST

from coi import logs, metrics
from coi.core.access import PUBLIC, permission

blueprint = Blueprint("metrics", __name__)

FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def install(app: Flask) -> None:
    """Count every answered request, pages, API, errors and static files alike."""
    app.after_request(_count_request)


def _count_request(response: Response) -> Response:
    if g.get("request_started") is not None:  # coi.logs saw the request begin
        metrics.count_request(logs.endpoint_name(), request.method, response.status_code,
                              logs.elapsed_seconds())
    return response


@blueprint.route("/metrics")
@permission(PUBLIC)  # no login: the token, or the loopback rule, below
def scrape() -> Response:
    token = current_app.config["METRICS_TOKEN"]
    if token:
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(offered.strip().encode(), token.encode()):
            abort(401)
    elif not _local_and_direct():
        abort(403)
    body = metrics.exposition(current_app.extensions["coi.engine"])
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _local_and_direct() -> bool:
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
    return loopback and not any(request.headers.get(name) for name in FORWARDING_HEADERS)
