"""Engines and sessions. The view, job or CLI command that opens a session owns its transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, request
from sqlalchemy import Engine, create_engine, event
from sqlmodel import Session

WRITES = "coi_writes"  # execution option: this transaction will write


def for_writing(engine: Engine) -> Engine:
    """The same engine, for transactions that will write (takes SQLite's write lock at BEGIN;
    changes nothing on PostgreSQL, whose row locks do the work)."""
    return engine.execution_options(**{WRITES: True})


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _make_sqlite_transactional(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _make_sqlite_transactional(engine: Engine) -> None:
    # pysqlite opens transactions lazily and as DEFERRED: two writers that both read first
    # then deadlock on the upgrade to a write lock, and one fails at once with "database is
    # locked". A writing transaction therefore says BEGIN IMMEDIATE and takes the write lock
    # up front, so writers queue (busy timeout) instead of failing. Reading transactions
    # stay DEFERRED: under WAL they never block the writer and the writer never blocks them.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITES, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def engine_name(engine: Engine) -> str:
    return engine.dialect.name


def request_session() -> Session:
    """The session of the current request, opened on first use and closed at teardown."""
    if "db_session" not in g:
        engine = current_app.extensions["coi.engine"]
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            engine = for_writing(engine)
        g.db_session = Session(engine, expire_on_commit=False)
    session: Session = g.db_session
    return session


def keep(session: Session, *rows: Any) -> None:
    """Hold `rows` for as long as `session` lives. The session's identity map holds rows
    weakly: a row nobody references is dropped, and a later `session.get` reads it again."""
    session.info.setdefault("coi.kept", []).extend(rows)


@contextmanager
def reading_first(session: Session) -> Iterator[None]:
    """Reads a writing request makes before its writes (who is asking), in a reading
    transaction of their own that ends before the writing one begins. On SQLite the write
    lock (BEGIN IMMEDIATE) is then held for the request's own work, not for the token
    lookup and the input's validation as well, so writers wait less for each other. Rows
    read stay in the session (it does not expire them on commit). PostgreSQL takes no lock
    at BEGIN: nothing changes there."""
    bind = session.get_bind()
    if (bind.dialect.name != "sqlite" or not bind.get_execution_options().get(WRITES)
            or session.in_transaction()):
        yield
        return
    session.connection(execution_options={WRITES: False})
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    session.commit()


def close_request_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session for CLI commands and jobs: committed on success, rolled back on error."""
    with Session(for_writing(engine), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
