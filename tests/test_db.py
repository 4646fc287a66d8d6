"""SQLite writers take turns (coi.db.WriterQueue): a turn ends with its transaction, however
the transaction ends, so one failed request never holds up every writer after it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from coi.db import for_writing, make_engine
from tests.databases import ENGINE

pytestmark = pytest.mark.skipif(ENGINE != "sqlite", reason="SQLite's writer queue")


def _write_in_another_thread(engine, value: str) -> list[BaseException]:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with Session(for_writing(engine)) as session:
                session.execute(text("INSERT INTO note (value) VALUES (:value)"), {"value": value})
                session.commit()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    return errors


@pytest.mark.parametrize("ending", ["rollback", "error", "close"])
def test_a_writer_that_does_not_commit_leaves_the_next_writer_its_turn(tmp_path: Path, ending):
    path = tmp_path / "queue.sqlite3"
    # Two engines, so that the next writer cannot reuse the first writer's connection.
    engine, other = make_engine(f"sqlite:///{path}"), make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE note (value TEXT NOT NULL)"))
    session = Session(for_writing(engine))
    session.execute(text("INSERT INTO note (value) VALUES ('never kept')"))
    if ending == "rollback":
        session.rollback()
    elif ending == "error":
        with pytest.raises(Exception, match="NOT NULL"):
            session.execute(text("INSERT INTO note (value) VALUES (NULL)"))
        session.rollback()
    session.close()

    assert _write_in_another_thread(other, "kept") == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT value FROM note")).scalars().all() == ["kept"]
    engine.dispose()
    other.dispose()


def test_a_writer_waits_for_the_writer_of_another_engine_and_then_writes(tmp_path: Path):
    path = tmp_path / "queue.sqlite3"
    first, second = make_engine(f"sqlite:///{path}"), make_engine(f"sqlite:///{path}")
    with first.begin() as connection:
        connection.execute(text("CREATE TABLE note (value TEXT NOT NULL)"))
    holding, go = threading.Event(), threading.Event()

    def hold_then_write() -> None:
        with Session(for_writing(first)) as session:
            session.execute(text("INSERT INTO note (value) VALUES ('first')"))
            holding.set()
            go.wait()
            session.commit()

    holder = threading.Thread(target=hold_then_write)
    holder.start()
    holding.wait()
    waiter_errors: list[list[BaseException]] = []
    waiter = threading.Thread(target=lambda: waiter_errors.append(
        _write_in_another_thread(second, "second")))
    waiter.start()
    go.set()
    holder.join()
    waiter.join()

    assert waiter_errors == [[]]
    with first.connect() as connection:
        assert connection.execute(text("SELECT value FROM note ORDER BY rowid")).scalars().all() \
            == ["first", "second"]
    first.dispose()
    second.dispose()
