"""What every response tells the browser it may do with the page."""

from __future__ import annotations

from flask import Flask, current_app
from werkzeug.wrappers import Response

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

def install(app: Flask) -> None:
    """Every response, pages, API answers, errors and static files alike, carries the
    headers above."""
    app.after_request(_add_headers)


def _add_headers(response: Response) -> Response:
    response.headers.update(HEADERS)
    if current_app.config["MODE"] == "production":
        response.headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    return response

