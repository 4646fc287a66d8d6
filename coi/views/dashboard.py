"""The coordinator's dashboard: open alarms, cases by next step with the nearest deadlines,
and shipments in transit, for the reader's sites. The page refreshes itself: dashboard.js
fetches `?part=body` every DASHBOARD_REFRESH_SECONDS and swaps it in; without JavaScript the
page is complete and a reload updates it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, make_response, render_template, request

from coi.core.access import permission
from coi.core.display import local_text
from coi.services import dashboard
from coi.web import actor, now, request_session

blueprint = Blueprint("dashboard", __name__)


@blueprint.route("/dashboard")
@permission("dashboard.view")
def index() -> Any:
    me, moment = actor(), now()
    found = dashboard.board(session=request_session(), actor=me, now=moment,
                            settings=current_app.extensions["coi.alerting"])
    body_only = request.args.get("part") == "body"
    response = make_response(render_template(
        "dashboard_body.html" if body_only else "dashboard.html", board=found,
        updated=local_text(moment, me.timezone, date=False, seconds=True),
        refresh_seconds=refresh_seconds()))
    # Every answer is "as of now": a cached one would show stale deadlines as current.
    response.headers["Cache-Control"] = "no-store"
    return response


def refresh_seconds() -> int:
    return max(1, int(current_app.config.get("DASHBOARD_REFRESH_SECONDS") or 30))
