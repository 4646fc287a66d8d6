"""The answer to a request that needs a login and has none: a page is sent to the login
(and back after it), the scan page's JSON calls get a problem the page shows, with a link to
log in again in another tab, and a form posted after its session ended is kept (coi.kept)
and shown again, filled in, after the login. Each says why the session ended, when known."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import flash, g, redirect, request, url_for

from coi import kept
from coi.responses import problem

# The forms whose entries are given back after a login: endpoint -> the page that shows the
# form (the login leads back there). Other forms are short; they are simply filled in again.
KEPT_FORMS: dict[str, Callable[[dict[str, Any]], str]] = {
    "cases.enrol": lambda args: url_for("cases.enrol"),
    "cases.correct_patient": lambda args: url_for("cases.show", coi=args["coi"]),
    "alarms.resolve": lambda args: url_for("alarms.show", alarm_id=args["alarm_id"]),
    "alarms.decide": lambda args: url_for("alarms.show", alarm_id=args["alarm_id"]),
}


def answer() -> Any:
    why = g.get("session_ended")
    said = f"You were {why}." if why else "You are not logged in."
    if _asks_for_json():

        back = url_for("scan.signed_in") if request.blueprint == "scan" else _page_before()
        return problem(401, "Signed out", f"{said} Log in again (a new tab opens), then come "
                       "back to this page and go on: nothing was recorded, and what this page "
                       "holds is still here.", "session_ended" if why else "login_required",
                       login=url_for("auth.login", next=back))
    if request.method in ("GET", "HEAD"):
        if why:
            flash(f"{said} Log in again to go on.", "info")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    form_page = KEPT_FORMS.get(request.endpoint or "")
    back = form_page(request.view_args or {}) if form_page else _page_before()
    user_id = g.get("ended_user")
    if form_page and isinstance(user_id, int) and kept.keep(
            form=request.endpoint or "", user_id=user_id, fields=request.form.to_dict()):
        flash(f"{said} Nothing was saved. Log in again: what you typed is kept and shown "
              "again to check and submit.", "info")
    else:
        flash(f"{said} Nothing was saved. Log in again to go on.", "info")
    return redirect(url_for("auth.login", next=back))


def _asks_for_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _page_before() -> str | None:
    """The page of this site the request came from (the login leads back there); a POST's
    own address would answer 405 to the browser that follows it."""

    if not request.referrer:
        return None
    parts = urlsplit(request.referrer)
    if parts.netloc and parts.netloc != request.host:
        return None
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path of this site ("/cases?state=enrolled"), else None (the home page)."""
    # Anything else is an open redirect: "//evil.example" and "https://..." leave the site;
    # browsers read "\\" as "/" and drop tabs and newlines, so "/\\evil.example" and
    # "/%09/evil.example" ("/", tab, "/evil.example") become "//evil.example"; and CR/LF in a
    # Location header would split it (werkzeug refuses it with a 500).
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    # isprintable() is False for every control, format and separator character but " ".
    if not target.isprintable() or any(character.isspace() for character in target):
        return None
    return target
