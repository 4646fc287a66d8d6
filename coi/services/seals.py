"""The identity chain: every insert, change and deletion of a row that defines identity (the
patient and the case that points at them, units, alarms and their events, signatures, role
grants, accounts and their credentials, the audit trail, labels and the keys that sign them)
appends a seal to ONE hash chain for the whole database (table `record_seal`). `check` then
finds a row changed, added or removed behind the application's back, and a chain rewritten to
match is found by the signed checkpoints, which carry its head (ARCHITECTURE section 7).

Seals are written by a session hook (`install`, done by `coi.db.make_engine`): no service has
to remember. The hook notes which covered rows a transaction wrote (the ORM's flushes, and
UPDATE / DELETE statements run through the session) and, just before the transaction commits,
reads their content back from the database and appends one seal each. Appends take turns: a
PostgreSQL advisory lock held to the commit (the chain's order is then the commit order),
SQLite's write lock. A transaction that writes no covered row pays nothing. Writes that
go around the session (a DBAPI connection, an attacker's SQL) have no seal, which is what
`check` finds; an INSERT statement on a covered table through the session is refused, since
the rows it makes cannot be known without reading them back.

Content is the row's sealed columns (`SEALED`) in canonical JSON, times in UTC. Columns left
out are projections that scans and sweeps rewrite all day and that are not evidence
themselves (`UNSEALED` says why for each). Adding a column to `SEALED` changes every row's
content: the migration that does it must append a seal for every row (as 0009 did)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.orm.session import SessionTransaction
from sqlmodel import SQLModel

from coi.core.canonical import canonical_json
from coi.models import RecordSeal

GENESIS = "0" * 64  # the previous hash of the first seal

SEALED: dict[str, tuple[str, ...]] = {
    "patient": ("id", "site_id", "phi", "mrn_index", "created_at", "created_by_id"),
    "therapy_case": ("id", "coi", "patient_id", "product_id", "route_id", "site_id",
                     "manufacturing_site_id", "created_at", "created_by_id"),
    "unit": ("id", "serial", "case_id", "kind", "sequence", "state", "custodian_site_id",
             "created_at", "created_by_id", "expires_at"),
    "alarm": ("id", "kind", "code", "severity", "state", "raised_at", "case_id", "site_id",
              "event_id", "actor_id", "summary", "rule", "shipment_id", "unit_id", "fingerprint",
              "level", "acknowledged_at", "resolved_at", "outcome"),
    "alarm_event": ("id", "alarm_id", "at", "action", "level", "actor_id", "comment", "outcome",
                    "signature_id"),
    "alarm_deviation": ("id", "alarm_id", "event_id", "reference"),
    "signature": ("id", "signer_id", "signer_name", "meaning", "signed_at", "subject_type",
                  "subject_id", "content_sha256"),
    "role_grant": ("id", "user_id", "site_id", "role", "created_at"),
    # The password hash too: whoever can set it can sign as that person.
    "app_user": ("id", "username", "full_name", "email", "password_hash", "active",
                 "created_at", "global_admin", "must_change_password", "password_changed_at"),
    # A token acts as its owner: a planted one is as good as a planted grant.
    "api_token": ("id", "user_id", "name", "token_hash", "prefix", "created_at",
                  "created_by_id", "expires_at", "revoked_at", "scopes"),
    "audit_entry": ("id", "at", "actor_id", "actor_name", "entity", "entity_id", "action",
                    "field", "old_value", "new_value", "reason", "via"),
    "audit_entry_site": ("entry_id", "site_id"),
    "label": ("id", "case_id", "unit_id", "kind", "identifier", "template", "template_version",
              "key_id", "signature", "output", "dpi", "printed_at", "printed_by_id",
              "reprint_of_id", "reason"),
    "label_revocation": ("id", "label_id", "revoked_at", "revoked_by_id", "reason", "category"),
    # The keys checkpoints are verified with: a planted key would sign a rewritten chain.
    "label_key": ("id", "key_id", "public_key", "first_used_at"),
}

UNSEALED: dict[str, dict[str, str]] = {
    "therapy_case": dict.fromkeys(
        ("state", "last_step", "last_step_at", "next_step", "next_due_at", "overdue_alarm_id"),
        "where the case is on its route: a projection of its custody ledger, itself chained"),
    "unit": {"expiry_check_at": "when the expiry sweep looks next: a schedule, not a record"},
    "alarm": dict.fromkeys(("escalate_at", "notify_at", "notified_event_id"),
                           "the scheduler's bookkeeping; the changes are alarm events"),
}

LOCK_KEY = 0x636F69_5345414C  # PostgreSQL advisory lock of the chain's writers ("coi" "SEAL")
_LOCKED_HEAD = text("SELECT seq, hash FROM coi_seal_head(:key)")  # lock, then head (0009)
_PENDING = "coi.seals.pending"  # session.info: {(table, key): first action} of this transaction


# ---------------------------------------------------------------- content and links

def content_sha256(values: dict[str, Any]) -> str:
    """SHA-256 of a row's sealed columns in canonical JSON, times as UTC ISO 8601."""
    form = canonical_json({name: _plain(value) for name, value in values.items()})
    return hashlib.sha256(form.encode()).hexdigest()


def seal_hash(prev_hash: str, seq: int, table: str, row_key: str, action: str,
              content: str | None) -> str:
    form = canonical_json({"seq": seq, "table": table, "row": row_key, "action": action,
                           "content": content})
    return hashlib.sha256(f"{prev_hash}\n{form}".encode()).hexdigest()


def row_key(values: Iterable[Any]) -> str:
    return "/".join(str(value) for value in values)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return value


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


def head(*, session: Session | Connection) -> tuple[int, str]:
    """The chain's last seal (sequence number, hash); (0, GENESIS) for an empty chain."""
    last = session.execute(_head_query()).first()
    return (last[0], last[1]) if last else (0, GENESIS)


@functools.cache
def _head_query() -> Any:
    """The last seal by its primary key: max() is one index lookup on both engines, where
    ORDER BY ... DESC LIMIT 1 shows in SQLite's plan as a scan (stopped at once, but a scan)."""
    seal = RecordSeal.__table__  # type: ignore[attr-defined]
    return select(seal.c.seq, seal.c.hash).where(
        seal.c.seq == select(func.max(seal.c.seq)).scalar_subquery())


# ---------------------------------------------------------------- the session hook

def install() -> None:
    """Seal every covered write of every ORM session of the process. Idempotent."""
    for name, listener in (("after_flush", _after_flush), ("do_orm_execute", _on_execute),
                           ("before_commit", _before_commit),
                           ("after_transaction_end", _after_transaction_end)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def _note(session: Session, table: str, key: tuple[Any, ...], action: str) -> None:
    # The first action in the transaction decides what the seal says (see _seal).
    session.info.setdefault(_PENDING, {}).setdefault((table, key), action)


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    for action, objects in (("insert", session.new), ("update", session.dirty),
                            ("delete", session.deleted)):
        for obj in objects:
            state = inspect(obj)
            table = state.mapper.local_table.name  # type: ignore[union-attr]
            if table not in SEALED:
                continue
            if action == "update" and not any(
                    state.attrs[name].history.has_changes() for name in SEALED[table]):
                continue  # only unsealed columns changed (a case's place on its route)
            _note(session, table, tuple(state.mapper.primary_key_from_instance(obj)), action)


def _on_execute(execution: ORMExecuteState) -> Any:
    """UPDATE and DELETE statements run through the session (conditional updates of an alarm's
    state): the rows they will change are read first, by the statement's own WHERE clause."""
    if not (execution.is_update or execution.is_delete or execution.is_insert):
        return None
    statement: Any = execution.statement
    table = statement.table.name
    if table not in SEALED:
        return None
    if execution.is_insert:
        raise RuntimeError(f"{table} rows are sealed: add them through the session (ORM), "
                           "not with an INSERT statement")
    if execution.is_update and not _sets_sealed_column(execution, SEALED[table]):
        return None  # the scheduler's bookkeeping columns: nothing sealed changes
    session = execution.session
    primary = list(_table(table).primary_key.columns)
    if isinstance(execution.parameters, list):  # an ORM bulk UPDATE by primary key
        keys = [tuple(values[column.key] for column in primary)
                for values in execution.parameters]
    else:
        keys = [tuple(row) for row in session.execute(
            select(*primary).where(statement.whereclause) if statement.whereclause is not None
            else select(*primary))]
    result = execution.invoke_statement()
    if getattr(result, "rowcount", 1) != 0:  # nothing changed: nothing to seal
        for key in keys:
            _note(session, table, key, "delete" if execution.is_delete else "update")
    return result


def _sets_sealed_column(execution: ORMExecuteState, sealed: tuple[str, ...]) -> bool:
    values = getattr(execution.statement, "_values", None)
    if values:
        names = {getattr(key, "key", key) for key in values}
    elif isinstance(execution.parameters, list):
        names = {name for row in execution.parameters for name in row}
    else:
        return True  # values given some other way: assume the worst
    return not all(isinstance(name, str) for name in names) or bool(names & set(sealed))


def seal_pending(*, session: Session) -> None:
    """Seal what the transaction has written so far, now rather than at its commit: for a
    checkpoint that signs the chain's head in the same transaction (the demo's last step).
    On PostgreSQL the chain stays locked until the commit."""
    session.flush()  # what commit would flush next is noted too
    pending = session.info.get(_PENDING)
    if pending:
        _seal(session, pending)
        pending.clear()


def _before_commit(session: Session) -> None:
    seal_pending(session=session)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)  # committed (sealed) or rolled back


def _seal(session: Session, pending: dict[tuple[str, tuple[Any, ...]], str]) -> None:
    """Append a seal per noted row, in the chain's lock. A row noted as inserted and gone by
    now was inserted in a savepoint that was rolled back: it never existed."""
    # On the session's connection: these statements need none of the ORM's execution
    # machinery, which every sealing transaction (every scan) would pay for.
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # The advisory lock, held to the commit, then the head as the writer before left it:
        # one round trip (a function of migration 0009). Writers run at READ COMMITTED (the
        # default); at REPEATABLE READ the head would be stale and the sequence number taken
        # twice: the commit would fail on the primary key, the chain would not fork.
        last = connection.execute(_LOCKED_HEAD, {"key": LOCK_KEY}).first()
        seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    else:  # the transaction holds SQLite's write lock since its first write
        seq, prev = head(session=connection)
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    for table, key in pending:
        by_table.setdefault(table, []).append(key)
    seals: list[dict[str, Any]] = []
    for table in sorted(by_table):
        current = dict(_contents(connection, table, by_table[table]))
        for key in sorted(by_table[table]):
            first = pending[(table, key)]
            if key in current:
                action, content = ("insert" if first == "insert" else "update"), current[key]
            elif first == "insert":
                continue
            else:
                action, content = "delete", None
            seq += 1
            name = row_key(key)
            digest = seal_hash(prev, seq, table, name, action, content)
            seals.append({"seq": seq, "table_name": table, "row_key": name, "action": action,
                          "content_sha256": content, "prev_hash": prev, "hash": digest})
            prev = digest
    if seals:
        connection.execute(_insert_seals(), seals)


@functools.cache
def _insert_seals() -> Any:
    return insert(RecordSeal.__table__)  # type: ignore[attr-defined]


def _contents(connection: Connection, table: str,
              keys: list[tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(primary key, content hash) of the rows of `table` with these keys that exist."""
    query = _content_query(table)
    for start in range(0, len(keys), 500):  # SQLite's limit of bound values
        chunk = keys[start:start + 500]
        bound = [key[0] for key in chunk] if len(chunk[0]) == 1 else chunk
        for row in connection.execute(query, {"keys": bound}):
            yield _keyed(table, row._mapping)


@functools.cache
def _content_query(table: str) -> Any:
    """Built once per table (every sealing transaction reads its rows back)."""
    columns = _table(table).c
    primary = list(_table(table).primary_key.columns)
    where = (primary[0] if len(primary) == 1 else tuple_(*primary)).in_(
        bindparam("keys", expanding=True))
    return select(*(columns[name] for name in SEALED[table])).where(where)


def _keyed(table: str, row: Any) -> tuple[tuple[Any, ...], str]:
    primary = [column.name for column in _table(table).primary_key.columns]
    return tuple(row[name] for name in primary), content_sha256(dict(row))


# ---------------------------------------------------------------- checking

@dataclass(frozen=True)
class Finding:
    """Something that does not add up: where (a table's row, a seal) and what."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(frozen=True)
class _Latest:
    seq: int
    action: str
    content: str | None


@dataclass
class Checked:
    """What `check` went through, for the report of `flask coi ledger verify`."""

    findings: list[Finding]
    seals: int
    rows: int


def check(*, session: Session) -> Checked:
    """Every break of the seal chain, and every covered row whose content is not what its
    latest seal says: edited, inserted without a seal, deleted without one, or back after
    its deletion was sealed."""
    findings, latest, count = _check_chain(session)
    rows = 0
    for table in SEALED:
        for key, content in _all_contents(session, table):
            rows += 1
            where = f"{table} {row_key(key)}"
            seal = latest.pop((table, row_key(key)), None)
            if seal is None:
                findings.append(Finding(where, "not sealed: added behind the application's "
                                               "back"))
            elif seal.action == "delete":
                findings.append(Finding(where, f"present, though seal {seal.seq} recorded its "
                                               "deletion"))
            elif seal.content != content:
                findings.append(Finding(where, f"edited: its content differs from seal "
                                               f"{seal.seq}"))
    for (table, name), seal in sorted(latest.items(), key=lambda item: item[1].seq):
        if seal.action != "delete":
            findings.append(Finding(f"{table} {name}", f"missing: deleted behind the "
                                                      f"application's back (seal {seal.seq})"))
    return Checked(findings, count, rows)


def _check_chain(session: Session) -> tuple[list[Finding], dict[tuple[str, str], _Latest], int]:
    seal = RecordSeal.__table__  # type: ignore[attr-defined]
    findings: list[Finding] = []
    latest: dict[tuple[str, str], _Latest] = {}
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for row in session.execute(select(seal).order_by(seal.c.seq)).yield_per(5000):
        count += 1
        where = f"seal {row.seq}"
        if row.seq != expected_seq:
            findings.append(Finding(f"seal {expected_seq}", f"missing: seals {expected_seq}-"
                                    f"{row.seq - 1} were deleted" if row.seq > expected_seq
                                    else "sequence repeated"))
        if row.hash != seal_hash(row.prev_hash, row.seq, row.table_name, row.row_key,
                                 row.action, row.content_sha256):
            findings.append(Finding(where, "edited: its content does not match its hash"))
        elif row.prev_hash != expected_prev:
            findings.append(Finding(where, "inserted or reordered: it does not follow the "
                                           "seal before it"))
        expected_prev, expected_seq = row.hash, row.seq + 1
        latest[(row.table_name, row.row_key)] = _Latest(row.seq, row.action, row.content_sha256)
    return findings, latest, count


def _all_contents(session: Session, table: str) -> Iterator[tuple[tuple[Any, ...], str]]:
    columns = _table(table).c
    query = select(*(columns[name] for name in SEALED[table])).order_by(
        *_table(table).primary_key.columns)
    for row in session.execute(query).yield_per(5000):
        yield _keyed(table, row._mapping)
