from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for

from coi.core.access import AUTHENTICATED, PUBLIC, allowed, permission
from coi.services import cases
from coi.web import actor, request_session

blueprint = Blueprint("home", __name__)


@blueprint.route("/")
@permission(AUTHENTICATED)
def index() -> Any:
    me = actor()
    counts = (cases.counts_by_state(session=request_session(), actor=me)
              if allowed(me, "case.list") else None)
    grants = sorted((me.site_names.get(site, str(site)), role) for site, role in me.grants)
    return render_template("home.html", grants=grants, counts=counts)


@blueprint.route("/favicon.ico")
@permission(PUBLIC)
def favicon() -> Any:
    """Browsers ask for /favicon.ico where a response names no icon (a PNG, a JSON answer):
    the SVG that base.html links to."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)
