"""Engines and sessions. The view, job or CLI command that opens a session owns its transaction."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, request
from sqlalchemy import Engine, create_engine, event, make_url
from sqlmodel import Session

from coi.services import seals

WRITES = "coi_writes"  # execution option: this transaction will write


def for_writing(engine: Engine) -> Engine:
    """The same engine, for transactions that will write (takes SQLite's write lock at BEGIN;
    changes nothing on PostgreSQL, whose row locks do the work)."""
    return engine.execution_options(**{WRITES: True})


BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for its turn before "database is locked"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the app's database. Its sessions seal what they write to the identity
    chain (coi.services.seals): every engine of the app is made here, scripts' included."""
    seals.install()
    # A statement that fails is logged with its SQL, never with its values: they can be what
    # someone scanned or typed.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        connect_args: dict[str, Any] = {"timeout": BUSY_TIMEOUT}
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            connect_args["factory"] = _queued_connection(os.path.abspath(database))
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _make_sqlite_transactional(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class WriterQueue:
    """Writers to one SQLite file take turns here before BEGIN IMMEDIATE: the threads of a
    process on a lock, the processes (gunicorn workers, the scheduler) on an exclusive flock
    of a file next to the database; the next writer is woken when the turn is released.

    SQLite's own wait for its write lock is a busy handler that sleeps and tries again, the
    sleeps growing to 100 ms: a waiting writer sleeps past the moment the lock frees, and
    under steady load one writer can lose many rounds in a row (a scan's p99 of 0.6-1 s
    with 8 scanners, against 0.14 s queued; bench/README.md). The queue only orders the
    writers: SQLite's lock still keeps them apart, and a writer that did not queue (a
    transaction that began as a reader, another program) is waited for as before.

    One queue per file and process, whatever the engine: a thread that asks for a second
    turn while it holds one (two writing connections at once) fails after BUSY_TIMEOUT as
    SQLite would fail it. A turn is waited for without a limit only behind a writer of
    another process, which holds it until its transaction ends."""

    _queues: dict[tuple[int, str], WriterQueue] = {}
    _made = threading.Lock()

    def __init__(self, database: str) -> None:
        self.threads = threading.Lock()
        # Opened in this process: a descriptor inherited through fork would share its lock
        # with the parent, and two processes would write at once.
        self.fd = os.open(f"{database}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @classmethod
    def of(cls, database: str) -> WriterQueue:
        key = (os.getpid(), database)
        with cls._made:
            if key not in cls._queues:
                cls._queues[key] = cls(database)
            return cls._queues[key]

    def acquire(self) -> None:
        if not self.threads.acquire(timeout=BUSY_TIMEOUT):
            raise sqlite3.OperationalError("database is locked")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.threads.release()


class _Queued(sqlite3.Connection):
    """A connection that holds a turn of its file's WriterQueue from the BEGIN IMMEDIATE of a
    writing transaction to its end (commit, rollback or close)."""

    database = ""
    turn: WriterQueue | None = None

    def take_turn(self) -> None:
        if self.turn is None:
            queue = WriterQueue.of(self.database)
            queue.acquire()
            self.turn = queue

    def end_turn(self) -> None:
        if self.turn is not None:
            queue, self.turn = self.turn, None
            queue.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_turn()


def _queued_connection(database: str) -> type[_Queued]:
    return type("QueuedConnection", (_Queued,), {"database": database})


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
        raw = connection.connection.dbapi_connection
        queued = immediate and isinstance(raw, _Queued)
        if queued:
            raw.take_turn()  # in the writers' queue (WriterQueue), before SQLite's lock
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        except BaseException:
            if queued:
                raw.end_turn()
            raise


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


@contextmanager
def snapshot(engine: Engine) -> Iterator[Session]:
    """A session that reads one consistent state of the database and writes nothing, for a
    report over many tables (`flask coi ledger verify`), which would otherwise see rows
    committed between its statements: REPEATABLE READ on PostgreSQL; on SQLite a reading
    transaction, which (WAL) sees one state and never holds up the writers."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(engine, expire_on_commit=False) as session:
        yield session
