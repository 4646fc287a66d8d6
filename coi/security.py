"""What every response tells the browser it may do with the page, and what the app believes
of the reverse proxy in front of it (`COI_PROXY_FIX`)."""

from __future__ import annotations

from flask import Flask, current_app
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from coi.config import ConfigError

# No inline script or style anywhere: the pages load coi/static/*.js and style.css only, so
# injected markup can neither run nor restyle a page into a fake one. The scan page's camera
# stream is assigned with `srcObject`, which no fetch directive governs; the temperature
# charts are inline SVG drawn with presentation attributes (fill=, stroke=), not style=.
# No page shows a data: image today, so img-src does not allow them.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

# The scan page reads labels with the camera; no page needs any other powerful feature, and
# a feature not named here would keep its default (often "self"), so they are denied by name.
PERMISSIONS_POLICY = ", ".join((
    "camera=(self)",
    "microphone=()",
    "geolocation=()",
    "payment=()",
    "usb=()",
    "serial=()",
    "hid=()",
    "midi=()",
    "display-capture=()",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: over HTTPS Flask-WTF refuses a form whose Referer is missing or from
    # another host (WTF_CSRF_SSL_STRICT), so our own pages must keep sending it to us.
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}

# Production only: a development server on http://localhost must stay reachable over HTTP.
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"

PROXY_FIX_NAMES = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def install(app: Flask) -> None:
    """Every response, pages, API answers, errors and static files alike, carries the
    headers above; behind a proxy configured in `PROXY_FIX`, the app sees the client's address,
    scheme and host as the proxy forwarded them."""
    app.after_request(_add_headers)
    counts = proxy_fix_counts(app.config.get("PROXY_FIX") or "")
    if counts:
        app.wsgi_app = ProxyFix(app.wsgi_app, **counts)  # type: ignore[method-assign]


def _add_headers(response: Response) -> Response:
    response.headers.update(HEADERS)
    if current_app.config["MODE"] == "production":
        response.headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    return response


def proxy_fix_counts(text: str) -> dict[str, int]:
    """'x_for=1,x_proto=1' -> {"x_for": 1, "x_proto": 1, "x_host": 0, ...}: how many proxies
    in front of the app set each X-Forwarded-* header. Empty: no proxy is trusted and those
    headers are ignored."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = (piece.strip() for piece in item.partition("="))
        if name not in PROXY_FIX_NAMES or not (value.isascii() and value.isdigit()):
            raise ConfigError(
                f"COI_PROXY_FIX entry {item!r} is not name=count; the names are "
                f"{', '.join(PROXY_FIX_NAMES)}, each with the number of proxies that set the header, "
                "e.g. COI_PROXY_FIX=x_for=1,x_proto=1,x_host=1 behind one reverse proxy.")
        counts[name] = int(value)
    # A header not named is not trusted: ProxyFix on its own would trust x_for and x_proto.
    return dict.fromkeys(PROXY_FIX_NAMES, 0) | counts if counts else {}
