"""Fixtures: a migrated database per test (SQLite file or PostgreSQL), a frozen clock, the app,
and the personas every permission test uses (the helpers the tests share are in
tests/helpers.py, the browser tests' fixtures in tests/browser.py).

COI_TEST_ENGINE=sqlite (default) or postgresql; postgresql needs COI_TEST_POSTGRES_URL, a
server where the user may create databases (a scratch database is made for the run and
dropped after it)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
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
from coi.core.clock import FrozenClock
from coi.db import make_engine
from tests.databases import ENGINE
from tests.helpers import LABEL_KEY, PHI_INDEX_KEY, REALDATA, START, World, build_world

pytest_plugins = ["tests.browser"]

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
            "PHI_KEYS": phi_keys, "PHI_INDEX_KEY": PHI_INDEX_KEY,
            "LABEL_SIGNING_KEY": LABEL_KEY, "LABEL_VERIFY_BASE_URL": "https://coi.example.org",
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

@pytest.fixture
def world(session: Session, clock: FrozenClock) -> World:
    """The sites, product, route and personas of tests/helpers.py."""
    return build_world(session, clock.now())


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (it ships beside the repo on "
                    "this team's machines and in CI); set COI_REALDATA to point at it")
    return REALDATA
