"""What every response tells the browser (coi/security.py): a Content-Security-Policy that runs
no inline script or style, no framing, no sniffing, referrers kept on the site, the camera and
nothing else, HSTS in production. The pages keep to that policy: no inline script, style or
event handler in any of them. The login page sends people on only to paths of this site, and
behind a reverse proxy (COI_PROXY_FIX) the app sees the client as the proxy forwarded it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from sqlmodel import select

from coi.app import create_app
from coi.config import ConfigError
from coi.core.access import PUBLIC, permission
from coi.labels import payload
from coi.models import LoginAttempt, coi_of
from coi.services import alarms, enrolment, labels
from tests.helpers import CSRF, PASSWORD, csv_file, login, make_case, open_for, store

EXPECTED = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

# One of each kind of answer: a page, an API answer, an API problem, an error page, a redirect,
# a static file, a public page.
ANSWERS = {
    "login page": ("/login", 200),
    "API answer": ("/api/v1/openapi.json", 200),
    "API problem": ("/api/v1/cases", 401),
    "error page": ("/no-such-page", 404),
    "redirect to login": ("/cases", 302),
    "static file": ("/static/scan.js", 200),
    "public verify page": ("/verify", 200),
}


def directives(policy: str) -> dict[str, list[str]]:
    """'a x y; b z' -> {"a": ["x", "y"], "b": ["z"]}"""
    parsed = {}
    for part in filter(None, (piece.strip() for piece in policy.split(";"))):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def permissions(policy: str) -> dict[str, str]:
    """'camera=(self), microphone=()' -> {"camera": "(self)", "microphone": "()"}"""
    return dict(item.strip().split("=", 1) for item in policy.split(","))


# ---------------------------------------------------------------- the headers


@pytest.mark.parametrize("kind", ANSWERS)
def test_every_kind_of_answer_carries_the_security_headers(client, kind):
    url, status = ANSWERS[kind]
    response = client.get(url)

    assert response.status_code == status
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, name
    assert permissions(response.headers["Permissions-Policy"])["camera"] == "(self)"
    assert "Strict-Transport-Security" not in response.headers  # not in production


def test_a_page_that_fails_unexpectedly_still_carries_them(app, client):
    @app.route("/boom")
    @permission(PUBLIC)
    def boom() -> Any:
        raise RuntimeError("kaput")

    response = client.get("/boom")

    assert response.status_code == 500
    assert response.headers["Content-Security-Policy"] == EXPECTED["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_policy_runs_no_inline_script_or_style_and_allows_no_other_origin(client):
    policy = directives(client.get("/login").headers["Content-Security-Policy"])

    for name in ("default-src", "script-src", "style-src", "img-src"):
        assert policy[name] == ["'self'"], name
        assert not {"'unsafe-inline'", "'unsafe-eval'", "data:", "*", "https:"} & set(policy[name])
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


def test_the_camera_is_the_only_feature_granted_and_only_to_the_site(client):
    granted = permissions(client.get("/scan").headers["Permissions-Policy"])

    assert granted.pop("camera") == "(self)"
    assert granted and set(granted.values()) == {"()"}  # the others are denied by name
    assert "microphone" in granted and "geolocation" in granted


def test_hsts_is_sent_in_production_only(app_config):
    production = create_app(dict(app_config, MODE="production"))
    try:
        for url in ("/login", "/api/v1/openapi.json", "/no-such-page"):
            response = production.test_client().get(url, base_url="https://coi.example.org")
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
            assert response.headers["Content-Security-Policy"] == EXPECTED["Content-Security-Policy"]
    finally:
        production.extensions["coi.engine"].dispose()


# ---------------------------------------------------------------- the pages keep to the policy


class InlineFinder(HTMLParser):
    """Everything in a page that a CSP without 'unsafe-inline' blocks (or that a URL runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name: value or "" for name, value in attrs}
        if tag == "script" and not names.get("src"):
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style> block")
        if "style" in names:
            self.found.append(f"style= on <{tag}>")
        self.found += [f"{name}= on <{tag}>" for name in names if name.startswith("on")]
        self.found += [f"{name}=javascript: on <{tag}>" for name, value in names.items()
                       if value.strip().lower().startswith("javascript:")]

    handle_startendtag = handle_starttag


@dataclass
class Records:
    coi: str
    shipment_id: int
    alarm_id: int
    verify_token: str


@pytest.fixture
def records(app, session, world, clock) -> Records:
    """A case with a labelled unit, a shipment whose logger went out of range, an alarm."""
    case = make_case(app, session, world, clock)
    coi = coi_of(case).text
    enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                            coi_text=coi, kind="apheresis_bag")
    job = labels.print_set(session=session, now=clock.now(), actor=world.actor("staff"),
                           signer=app.extensions["coi.signer"], coi_text=coi, output="png",
                           size="4x2", include_wristband=True, reason=None)
    session.commit()
    shipment = open_for(session, world, clock, case)
    clock.advance(hours=2)
    store(session, world, clock, shipment,
          csv_file([5.0, 5.2, 9.9, 9.8, 9.9, 9.7, 9.9, 5.1], start=shipment.opened_at))
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="temperature",
                               code="excursion_single", severity="critical",
                               summary="Shipper at 9.9 °C", rule={"rule": "test"}, case_id=case.id,
                               site_id=world.sites["BOS"].id, shipment_id=shipment.id)
    session.commit()
    assert alarm is not None
    token = payload.token_from_text(job.labels[0].qr)
    assert token
    return Records(coi=coi, shipment_id=shipment.id, alarm_id=alarm.id, verify_token=token)  # type: ignore[arg-type]


def pages(records: Records) -> list[tuple[str | None, str]]:
    """(persona, url) of every kind of page; None: nobody logged in."""
    return [
        (None, "/login"), (None, "/verify"), (None, f"/V/{records.verify_token}"), (None, "/no-such-page"),
        ("staff", "/"), ("staff", "/cases"), ("staff", "/cases/new"), ("staff", f"/cases/{records.coi}"),
        ("staff", f"/cases/{records.coi}/labels"), ("staff", "/scan"), ("staff", f"/scan?case={records.coi}"),
        ("staff", "/shipments"), ("staff", f"/shipments/{records.shipment_id}"), ("staff", "/alarms"),
        ("staff", f"/alarms/{records.alarm_id}"), ("staff", "/dashboard"), ("staff", "/dashboard?part=body"),
        ("staff", "/no-such-page"),
        ("admin", "/admin/users"), ("admin", "/admin/tokens"), ("admin", "/admin/audit"),
        ("staff", "/account/password"), ("staff", "/account/tokens"),
    ]


def test_no_page_holds_inline_script_style_or_event_handlers(app, world, records):
    shown = []
    for persona, url in pages(records):
        client = app.test_client()
        if persona:
            assert login(client, persona).status_code == 302
        response = client.get(url)
        assert response.status_code == (404 if url == "/no-such-page" else 200), (persona, url)
        assert response.mimetype == "text/html"
        html = response.get_data(as_text=True)
        finder = InlineFinder()
        finder.feed(html)
        assert finder.found == [], (persona, url, finder.found)
        assert "<script>" not in html and " style=" not in html and "<style" not in html, (persona, url)
        shown.append(html)
    # The pages under test are the ones that carry what a policy could break.
    everything = "\n".join(shown)
    assert "<svg" in everything and '<script src="/static/scan.js">' in everything
    assert '<script src="/static/dashboard.js">' in everything and 'id="camera"' in everything


def test_the_shipment_chart_as_its_own_file_carries_no_inline_style(app, client, world, records):
    login(client, "staff")
    response = client.get(f"/shipments/{records.shipment_id}/chart.svg")

    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    finder = InlineFinder()
    finder.feed(response.get_data(as_text=True))
    assert finder.found == []
    assert response.headers["Content-Security-Policy"] == EXPECTED["Content-Security-Policy"]


# ---------------------------------------------------------------- where the login sends people


@pytest.mark.parametrize("target", [
    "/%09/evil.example",  # "/", tab, "/evil.example": browsers drop the tab
    "/%0a/evil.example",
    "//evil.example",
    "/\\evil",
    "/%5Cevil.example",
    "https://evil.example",
    "evil.example",
    "javascript:alert(1)",
    "/ok%0d%0aSet-Cookie:x",  # CR/LF: would split the Location header
    "/ok%00",
    "/%E2%80%8B/evil.example",  # a zero-width space
    "/%C2%A0/evil.example",  # a no-break space
])
def test_after_login_a_target_off_the_site_leads_home(client, world, target):
    form = client.get(f"/login?next={target}")
    assert form.status_code == 200
    assert 'name="next"' not in form.get_data(as_text=True)  # not carried into the form

    response = login_to(client, f"/login?next={target}")  # as an attacker's link has it

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert not [cookie for cookie in response.headers.getlist("Set-Cookie") if cookie.startswith("x")]


@pytest.mark.parametrize("target", ["/cases", "/cases?state=enrolled&site=2", "/shipments/7"])
def test_after_login_a_path_of_the_site_is_where_people_land(client, world, target):
    response = login_to(client, f"/login?next={quote(target, safe='/')}")

    assert response.status_code == 302
    assert response.headers["Location"] == target


def test_a_page_asked_for_before_login_is_shown_after_it(client, world):
    asked = f"/cases?site={world.sites['BOS'].id}"
    to_login = client.get(asked)
    assert to_login.status_code == 302

    response = login_to(client, to_login.headers["Location"])

    assert response.headers["Location"] == asked
    assert client.get(response.headers["Location"]).status_code == 200


def login_to(client: Any, login_url: str) -> Any:
    """Log in as staff on the login page at `login_url` (with its `next`), as a browser would
    after following a link to it."""
    page = client.get(login_url)
    token = CSRF.search(page.get_data(as_text=True))
    assert token
    return client.post(login_url, data={"username": "staff", "password": PASSWORD,
                                        "csrf_token": token.group(1)})


# ---------------------------------------------------------------- behind a reverse proxy


def failed_login_address(app: Any, session: Any, forwarded_for: str) -> str | None:
    client = app.test_client()
    page = client.get("/login")
    token = CSRF.search(page.get_data(as_text=True))
    assert token
    client.post("/login", data={"username": "staff", "password": "wrong", "csrf_token": token.group(1)},
                headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "http"})
    session.rollback()
    return session.exec(select(LoginAttempt)).one().remote_addr


def test_without_proxy_fix_a_forwarded_address_is_not_believed(app, session, world):
    assert failed_login_address(app, session, "203.0.113.7") == "127.0.0.1"


@pytest.fixture
def behind_one_proxy(app_config):
    return app_config | {"PROXY_FIX": "x_for=1, x_proto=1,x_host=1"}


@pytest.fixture
def proxied(behind_one_proxy) -> Iterator[Flask]:
    app = create_app(behind_one_proxy)
    yield app
    app.extensions["coi.engine"].dispose()


def test_behind_the_configured_proxy_the_client_address_is_the_forwarded_one(proxied, session, world):
    # The last address is the one the proxy saw; what comes before it, the client wrote itself.
    assert failed_login_address(proxied, session, "198.51.100.1, 203.0.113.7") == "203.0.113.7"


def test_behind_the_proxy_a_form_sent_over_https_needs_a_referer_of_the_public_host(proxied, world):
    # The app sees the scheme and host the proxy forwards: over HTTPS Flask-WTF then checks the
    # Referer against that host, which is why the Referrer-Policy keeps it on the site.
    client = proxied.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "coi.example.org"}
    token = CSRF.search(client.get("/login", headers=forwarded).get_data(as_text=True))
    assert token
    form = {"username": "staff", "password": PASSWORD, "csrf_token": token.group(1)}

    without = client.post("/login", data=form, headers=forwarded)
    elsewhere = client.post("/login", data=form, headers=forwarded | {"Referer": "https://evil.example/"})
    ours = client.post("/login", data=form, headers=forwarded | {"Referer": "https://coi.example.org/login"})

    assert (without.status_code, elsewhere.status_code) == (400, 400)
    assert ours.status_code == 302 and ours.headers["Location"] == "/"


def test_the_proxy_setting_is_read_from_the_environment_and_trusts_only_what_it_names(
        monkeypatch, app_config, session, world):
    monkeypatch.setenv("COI_PROXY_FIX", "x_for=1")
    app = create_app(app_config)
    try:
        assert failed_login_address(app, session, "203.0.113.9") == "203.0.113.9"
        # X-Forwarded-Proto is not named, so a request saying "https" is still seen as http:
        # no Referer is asked for.
        client = app.test_client()
        forwarded = {"X-Forwarded-Proto": "https"}
        token = CSRF.search(client.get("/login", headers=forwarded).get_data(as_text=True))
        assert token
        answer = client.post("/login", headers=forwarded, data={
            "username": "staff", "password": PASSWORD, "csrf_token": token.group(1)})
        assert answer.status_code == 302
    finally:
        app.extensions["coi.engine"].dispose()


@pytest.mark.parametrize("setting", ["x_for", "x_for=one", "x_forwarded=1", "x_for=-1", "1"])
def test_a_proxy_setting_that_cannot_be_read_stops_the_app(app_config, setting):
    with pytest.raises(ConfigError, match=r"COI_PROXY_FIX entry .* is not name=count"):
        create_app(app_config | {"PROXY_FIX": setting})

