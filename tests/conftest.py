"""Fixtures: a migrated database per test (SQLite file or PostgreSQL), a frozen clock, the app,
and the personas every permission test uses.

COI_TEST_ENGINE=sqlite (default) or postgresql; postgresql needs COI_TEST_POSTGRES_URL, a
server where the user may create databases (a scratch database is made for the run and
dropped after it)."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, make_url, text
from sqlmodel import Session, SQLModel

import coi.passwords
from coi import migrate
from coi.app import create_app
from coi.core.access import Actor
from coi.core.clock import FrozenClock
from coi.db import make_engine
from coi.models import Site
from coi.services import masterdata, users

ENGINE = os.environ.get("COI_TEST_ENGINE", "sqlite")
REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("COI_REALDATA", REPO.parent / "shared" / "realdata"))
PASSWORD = "correct horse battery"
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ROUTE = (REPO / "coi" / "route_definitions" / "cartx-v1.toml").read_text()
INSTALLATION_KEY = "bGFiZWwtc2lnbmluZy1rZXktZm9yLXRlc3RzLW9ubHk="  # 32 bytes, tests only

# Scrypt is the production hash and takes tens of milliseconds by design; the suite creates
# hundreds of accounts, so it uses a cheap pbkdf2. The code path is the same.
coi.passwords.METHOD = "pbkdf2:sha256:1000"


def pytest_report_header() -> str:
    return f"coi database engine: {ENGINE}"


# ---------------------------------------------------------------- databases

@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrated once per run: a SQLite file to copy, or a PostgreSQL scratch database."""
    if ENGINE == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.sqlite3"
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        yield str(path)
        return
    if ENGINE != "postgresql":
        raise pytest.UsageError(f"COI_TEST_ENGINE={ENGINE!r}: use sqlite or postgresql")
    base = os.environ.get("COI_TEST_POSTGRES_URL")
    if not base:
        raise pytest.UsageError("COI_TEST_ENGINE=postgresql needs COI_TEST_POSTGRES_URL")
    name = f"coi_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> str:
    """A migrated, empty database for one test."""
    if ENGINE == "sqlite":
        path = tmp_path / "coi.sqlite3"
        shutil.copyfile(database_template, path)
        return f"sqlite:///{path}"
    engine = create_engine(database_template)
    tables = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        # TRUNCATE does not fire the append-only row triggers: it is the test harness's reset.
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return database_template


# ---------------------------------------------------------------- app

@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def phi_keys() -> list[str]:
    return [Fernet.generate_key().decode()]


@pytest.fixture
def app_config(database_url: str, clock: FrozenClock, phi_keys: list[str],
               tmp_path: Path) -> dict[str, Any]:
    return {"MODE": "testing", "DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
            "PHI_KEYS": phi_keys, "PHI_INDEX_KEY": "dGVzdC1pbmRleC1rZXktMzItYnl0ZXMtbG9uZyEh",
            "INSTALLATION_SIGNING_KEY": INSTALLATION_KEY, "LABEL_VERIFY_BASE_URL": "https://coi.example.org",
            "CLOCK": clock}


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(dict(app_config))
    yield application
    application.extensions["coi.engine"].dispose()


@pytest.fixture
def engine(app: Flask) -> Engine:
    return app.extensions["coi.engine"]  # type: ignore[no-any-return]


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as db:
        yield db


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# ---------------------------------------------------------------- personas

@dataclass
class World:
    """Sites and people: each persona holds one role at one site."""

    sites: dict[str, Site]
    actors: dict[str, Actor]

    def actor(self, persona: str) -> Actor:
        return self.actors[persona]


# persona -> (site code, role). `outsider` is site staff at another hospital.
PERSONAS = {
    "staff": ("BOS", "site_staff"),
    "staff2": ("BOS", "site_staff"),
    "outsider": ("BER", "site_staff"),
    "coordinator": ("MFG", "coordinator"),
    "qa": ("MFG", "qa"),
    "courier": ("DEP", "courier"),
    "admin": ("BOS", "admin"),
}


@pytest.fixture
def world(session: Session, clock: FrozenClock) -> World:
    now = clock.now()
    sites = {
        code: masterdata.create_site(session=session, now=now, actor=None, code=code, name=name,
                                     kinds=kinds, timezone=tz, facility_id=fid, reason="fixture")
        for code, name, kinds, tz, fid in [
            ("BOS", "Boston Hospital", ["collection", "treatment"], "America/New_York", "A9998"),
            ("BER", "Berlin Hospital", ["collection", "treatment"], "Europe/Berlin", "A9997"),
            ("MFG", "Manufacturing", ["manufacturing"], "America/Chicago", None),
            ("DEP", "Courier depot", ["courier_depot"], "America/New_York", None),
        ]
    }
    masterdata.create_product(session=session, now=now, actor=None, code="CARTX", name="CAR-T",
                              description="", reason="fixture")
    masterdata.add_route_version(session=session, now=now, actor=None, definition=ROUTE,
                                 reason="fixture")
    actors = {}
    for persona, (code, role) in PERSONAS.items():
        user = users.create_user(session=session, now=now, actor=None, username=persona,
                                 full_name=f"{persona.title()} Person", password=PASSWORD,
                                 reason="fixture")
        users.grant_role(session=session, now=now, actor=None, user_id=user.id,  # type: ignore[arg-type]
                         site_id=sites[code].id, role=role, reason="fixture")  # type: ignore[arg-type]
        actors[persona] = users.actor_for(session=session, user=user)
    session.commit()
    return World(sites=sites, actors=actors)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (it ships beside the repo on "
                    "this team's machines and in CI); set COI_REALDATA to point at it")
    return REALDATA


# ---------------------------------------------------------------- web helpers

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    token = CSRF.search(page.get_data(as_text=True))
    assert token, "login page has no CSRF token"
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token.group(1)})


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, str]) -> Any:
    """Submit a form the way a browser does: load the page, take its CSRF token, post."""
    page = client.get(page_url)
    token = CSRF.search(page.get_data(as_text=True))
    assert token, f"{page_url} has no form with a CSRF token (status {page.status_code})"
    return client.post(action, data={**data, "csrf_token": token.group(1)})


def api_token(session: Session, clock: FrozenClock, world: World, persona: str) -> str:
    from coi.services import tokens

    # Issued as the system: the persona's own site may have no admin among the personas.
    text_, _row = tokens.issue_token(session=session, now=clock.now(), actor=None,
                                     user_id=world.actor(persona).user_id, name=f"{persona} device",
                                     days=30, reason="test")
    session.commit()
    return text_


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_case(app: Flask, session: Session, world: World, clock: FrozenClock, **overrides: Any) -> Any:
    """A case enrolled at BOS by `staff` (override any enrol() argument or the identity's fields)."""
    from datetime import date

    from coi.core.phi import PatientIdentity
    from coi.services import enrolment

    identity = PatientIdentity(overrides.pop("name", "Ann Example"),
                               overrides.pop("birth_date", date(1970, 5, 1)),
                               overrides.pop("mrn", "M-1"))
    arguments = {"session": session, "now": clock.now(), "actor": world.actor("staff"),
                 "cipher": app.extensions["coi.phi"], "site_code": "BOS", "product_code": "CARTX",
                 "manufacturing_site_code": "MFG", "identity": identity} | overrides
    case = enrolment.enrol(**arguments)
    session.commit()
    return case
