"""The tests' databases: migrated once per run, filled once per run with the records many
tests share (a template: the world of tests/helpers.py, the access matrix's records...), and
handed to each test as a database of its own holding exactly one template's records.

COI_TEST_ENGINE=sqlite (default) or postgresql; postgresql needs COI_TEST_POSTGRES_URL, a
server where the user may create databases (one scratch database is made for the run and
dropped after it).

SQLite: a template is a file, and a test gets a copy of it (0.2 ms).

PostgreSQL: the run has one database. A template is a snapshot of its tables, kept in a
schema of the template's own; before each test every table is emptied and refilled from the
snapshot, and every sequence is set back to where the template left it, in one round trip
on a connection kept for the run. Ids are therefore those of the template, a test never sees
another test's rows, and sequences go on from where they would in a fresh copy. Emptying
uses DELETE with session_replication_role = replica, so that neither the append-only
triggers of the evidence tables nor the foreign keys fire (the harness resets; nothing else
does); a user not allowed to set it gets TRUNCATE instead, slower, same result.

Per test on the CI machine (2 cores, PostgreSQL 15, load average 1.5-2.5), for a database
holding the world: this reset 1-2 ms (2 ms with the access matrix's records, 12 ms with the
demo); TRUNCATE of every table with RESTART IDENTITY, as before, 150-290 ms (each TRUNCATE
makes and fsyncs new files for every table and index), plus building the world again,
150-250 ms; TRUNCATE and the same refill, 150-290 ms; CREATE DATABASE ... TEMPLATE and a
first connection 195-260 ms with STRATEGY wal_log, 250-370 ms with file_copy (a checkpoint
each time), plus the DROP DATABASE."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from flask import Flask
from sqlalchemy import create_engine, make_url, text
from sqlmodel import Session, SQLModel

from coi import migrate
from coi.app import create_app
from coi.core.clock import FrozenClock
from coi.db import make_engine

ENGINE = os.environ.get("COI_TEST_ENGINE", "sqlite")

T = TypeVar("T")
# What fills a template: called with an app on the template's database (configured as the
# tests' apps are), a session on it and a frozen clock at helpers.START; returns the records
# the tests are given (ids and texts: plain data).
Fill = Callable[[Flask, Session, FrozenClock], T]


@dataclass(frozen=True, eq=False)
class Template(Generic[T]):
    """What a test's database starts with: the records of `base` and those `records` names."""

    name: str
    records: T
    base: Template[Any] | None = None

    def holds(self, name: str) -> bool:
        """Whether this template was built on (or is) the template called `name`."""
        return self.name == name or (self.base is not None and self.base.holds(name))


class Databases(ABC):
    """Templates and per-test databases on one engine (see the module's docstring)."""

    empty: Template[None]  # migrated, no rows

    def __init__(self, config: dict[str, Any], start: datetime) -> None:
        self.config = config  # the tests' app configuration, without DATABASE_URL and CLOCK
        self.start = start  # the frozen clock's time while a template is filled

    @abstractmethod
    def build(self, name: str, base: Template[Any], fill: Fill[T]) -> Template[T]:
        """A new template: `base`'s records plus what `fill` writes."""

    @abstractmethod
    def checkout(self, template: Template[Any], folder: Path) -> str:
        """The URL of a database for one test holding exactly `template`'s records (`folder`
        is the test's own temporary folder)."""

    @abstractmethod
    def close(self) -> None:
        """Drop what the run made outside pytest's temporary folders."""

    def _fill(self, url: str, fill: Fill[T]) -> T:
        clock = FrozenClock(self.start)
        app = create_app(self.config | {"DATABASE_URL": url, "CLOCK": clock})
        try:
            with Session(app.extensions["coi.engine"], expire_on_commit=False) as session:
                records = fill(app, session, clock)
                session.commit()
        finally:
            app.extensions["coi.engine"].dispose()
        return records


def open_databases(folder: Path, config: dict[str, Any], start: datetime) -> Databases:
    if ENGINE == "sqlite":
        return SqliteDatabases(folder, config, start)
    if ENGINE != "postgresql":
        raise pytest.UsageError(f"COI_TEST_ENGINE={ENGINE!r}: use sqlite or postgresql")
    base = os.environ.get("COI_TEST_POSTGRES_URL")
    if not base:
        raise pytest.UsageError("COI_TEST_ENGINE=postgresql needs COI_TEST_POSTGRES_URL")
    return PostgresDatabases(base, config, start)


# ---------------------------------------------------------------- SQLite: files

class SqliteDatabases(Databases):
    def __init__(self, folder: Path, config: dict[str, Any], start: datetime) -> None:
        super().__init__(config, start)
        self.folder = folder
        self.files: dict[str, Path] = {}
        path = self._file("empty")
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        self._settle(path)
        self.empty = Template("empty", None)

    def _file(self, name: str) -> Path:
        assert name not in self.files, f"a template called {name} exists already"
        self.files[name] = self.folder / f"{name}.sqlite3"
        return self.files[name]

    @staticmethod
    def _settle(path: Path) -> None:
        # The database runs in WAL mode: write everything back into the main file, so that a
        # copy of that file alone holds every record.
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0

    def build(self, name: str, base: Template[Any], fill: Fill[T]) -> Template[T]:
        path = self._file(name)
        shutil.copyfile(self.files[base.name], path)
        records = self._fill(f"sqlite:///{path}", fill)
        self._settle(path)
        return Template(name, records, base)

    def checkout(self, template: Template[Any], folder: Path) -> str:
        path = folder / "coi.sqlite3"
        shutil.copyfile(self.files[template.name], path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        pass  # the files are in pytest's temporary folder


# ---------------------------------------------------------------- PostgreSQL: snapshots

class PostgresDatabases(Databases):
    def __init__(self, server_url: str, config: dict[str, Any], start: datetime) -> None:
        import psycopg

        super().__init__(config, start)
        self.name = f"coi_test_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(server_url).set(database=self.name).render_as_string(hide_password=False)
        engine = make_engine(self.url)
        migrate.upgrade(engine)
        engine.dispose()
        libpq = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.connection = psycopg.connect(libpq, autocommit=True)
        # A test left holding a lock fails the next reset instead of hanging the run.
        self.connection.execute("SET lock_timeout = '60s'")
        present = {row[0] for row in self.connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")}
        # Parents before children, so that a refill that checks foreign keys passes.
        ordered = [table.name for table in SQLModel.metadata.sorted_tables]
        self.tables = [t for t in ordered if t in present] + sorted(present - set(ordered))
        try:
            self.connection.execute("SET session_replication_role = replica")
            self.clear = "".join(f'DELETE FROM public."{table}";\n' for table in self.tables)
        except psycopg.errors.InsufficientPrivilege:
            self.clear = "TRUNCATE " + ", ".join(f'public."{table}"' for table in self.tables) + ";\n"
        self.resets: dict[str, str] = {}
        self.empty = self._snapshot("empty", None, None)

    def _snapshot(self, name: str, records: T, base: Template[Any] | None) -> Template[T]:
        """Keep the tables' rows and the sequences as they are now as template `name`."""
        assert name not in self.resets, f"a template called {name} exists already"
        schema = f"coi_template_{name}"
        filled = [table for table in self.tables if self.connection.execute(
            f'SELECT EXISTS (SELECT FROM public."{table}")').fetchone()[0]]  # type: ignore[index]
        with self.connection.transaction():
            self.connection.execute(f'CREATE SCHEMA "{schema}"')
            for table in filled:
                self.connection.execute(f'CREATE TABLE "{schema}"."{table}" AS TABLE public."{table}"')
        sequences = self.connection.execute(
            "SELECT sequencename, COALESCE(last_value, start_value), last_value IS NOT NULL "
            "FROM pg_sequences WHERE schemaname = 'public' ORDER BY sequencename").fetchall()
        refill = "".join(f'INSERT INTO public."{table}" SELECT * FROM "{schema}"."{table}";\n'
                         for table in filled)
        rewind = ("SELECT " + ", ".join(f"setval('public.\"{sequence}\"', {value}, {called})"
                                        for sequence, value, called in sequences) + ";\n"
                  if sequences else "")
        self.resets[name] = f"BEGIN;\n{self.clear}{refill}{rewind}COMMIT;"
        return Template(name, records, base)

    def _reset(self, template: Template[Any]) -> None:
        self.connection.execute(self.resets[template.name])

    def build(self, name: str, base: Template[Any], fill: Fill[T]) -> Template[T]:
        self._reset(base)
        records = self._fill(self.url, fill)
        return self._snapshot(name, records, base)

    def checkout(self, template: Template[Any], folder: Path) -> str:
        self._reset(template)
        return self.url

    def close(self) -> None:
        self.connection.close()
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()
