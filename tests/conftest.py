"""Fixtures: a migrated database per test (SQLite file or PostgreSQL, see tests/databases.py),
a frozen clock, the app, and the personas every permission test uses (the helpers the tests
share are in tests/helpers.py, the browser tests' fixtures in tests/browser.py).

What many tests share is built once per run into a template (tests/databases.py): `world`
(the sites, product, route and personas of tests/helpers.py), and what a module adds by
overriding the `template` fixture. A test's database is a copy of the template holding what
it asks for; a test that asks for nothing gets a migrated, empty database."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlmodel import Session

import coi.passwords
from coi.app import create_app
from coi.core.clock import FrozenClock
from tests.databases import ENGINE, Databases, Template, open_databases
from tests.helpers import INSTALLATION_KEY, PHI_INDEX_KEY, REALDATA, START, World, build_world

pytest_plugins = ["tests.browser", "tests.tour"]

# Scrypt is the production hash and takes tens of milliseconds by design; the suite creates
# hundreds of accounts, so it uses a cheap pbkdf2. The code path is the same.
coi.passwords.METHOD = "pbkdf2:sha256:1000"


def pytest_report_header() -> str:
    return f"coi database engine: {ENGINE}"


# ---------------------------------------------------------------- databases

@pytest.fixture(scope="session")
def run_config() -> dict[str, Any]:
    """The app configuration of every test's app and of the apps that fill the templates (one
    PHI key per run: the templates' patient records must be readable by the tests' apps; a
    secret key production accepts, since some tests start the app in production mode). No
    scheduler runs beside the tests' apps: readiness and the banner do not expect one, except
    in the tests of the heartbeat, which turn SCHEDULER_EXPECTED on."""
    return {"MODE": "testing", "SECRET_KEY": "tests-only-session-key-0123456789-abcdefghij",
            "PHI_KEYS": [Fernet.generate_key().decode()], "PHI_INDEX_KEY": PHI_INDEX_KEY,
            "INSTALLATION_SIGNING_KEY": INSTALLATION_KEY, "LABEL_VERIFY_BASE_URL": "https://coi.example.org",
            "SCHEDULER_EXPECTED": False,
            # Warnings and errors only: an access line per request, and the INFO lines of
            # threads outliving a test (an SMTP server's), would fill the run's output.
            # tests/test_logs.py asks for INFO.
            "LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory, run_config: dict[str, Any]) -> Iterator[Databases]:
    made = open_databases(tmp_path_factory.mktemp("templates"), run_config, START)
    yield made
    made.close()


@pytest.fixture(scope="session")
def world_template(databases: Databases) -> Template[World]:
    return databases.build("world", databases.empty,
                           lambda _app, session, clock: build_world(session, clock.now()))


@pytest.fixture
def template(request: pytest.FixtureRequest, databases: Databases) -> Template[Any]:
    """The template this test's database is a copy of: the world if the test uses it, else an
    empty one. A module whose tests share more records overrides this fixture."""
    if "world" in request.fixturenames:
        return request.getfixturevalue("world_template")  # type: ignore[no-any-return]
    return databases.empty


@pytest.fixture
def database_url(databases: Databases, template: Template[Any], tmp_path: Path) -> str:
    """A migrated database of this test's own, holding exactly the template's records."""
    return databases.checkout(template, tmp_path)


# ---------------------------------------------------------------- app

@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def app_config(run_config: dict[str, Any], database_url: str, clock: FrozenClock) -> dict[str, Any]:
    return copy.deepcopy(run_config) | {"DATABASE_URL": database_url, "CLOCK": clock}


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

@pytest.fixture
def world(template: Template[Any], world_template: Template[World], database_url: str) -> World:
    """The sites and personas (tests/helpers.py PERSONAS), in the test's database since it
    was copied from a template holding them; the test's own copy of their records."""
    assert template.holds("world"), f"the test's database is a copy of {template.name}, not the world"
    return world_template.records.copy()


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (it ships beside the repo on "
                    "this team's machines and in CI); set COI_REALDATA to point at it")
    return REALDATA
