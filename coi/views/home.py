from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from coi.core.access import AUTHENTICATED, allowed, permission
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
