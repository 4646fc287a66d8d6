"""The custody ledger: append-only, hash-chained per case, with signed checkpoints over all
chain heads; `verify` finds any event edited, deleted, inserted or reordered behind the
application's back (ARCHITECTURE section 7)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, bindparam, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from coi.core.canonical import canonical_json
from coi.labels import payload
from coi.models import Case, CustodyEvent, LabelKey, LedgerCheckpoint
from coi.services.keys import Signer, register_key


class Link(Protocol):
    """An event of a chain as `chain_of` reads it (a CustodyEvent has the same fields)."""

    seq: int
    hash: str
    at: datetime
    kind: str
    actor_id: int | None
    site_id: int | None
    body: str


GENESIS = "0" * 64  # the previous hash of a case's first event
CHECKPOINT_DOMAIN = b"coi-ledger-checkpoint-v1\x00"  # never valid as a label signature


def event_hash(event: CustodyEvent, prev_hash: str) -> str:
    """SHA-256 over the previous hash and every field of the event but its own hash."""
    fields = {"case": event.case_id, "seq": event.seq, "at": _iso(event.at),
              "device_at": _iso(event.device_at), "kind": event.kind, "actor": event.actor_id,
              "site": event.site_id, "device": event.device, "body": event.body}
    if event.request_key is not None:  # events without one keep the form they were hashed in
        fields["request_key"] = event.request_key
    form = canonical_json(fields)
    return hashlib.sha256(f"{prev_hash}\n{form}".encode()).hexdigest()


def append(
    *, session: Session, now: datetime, case: Case, kind: str, body: dict[str, Any],
    actor_id: int | None, site_id: int | None, device: str | None = None,
    device_at: datetime | None = None, request_key: str | None = None,
) -> CustodyEvent:
    """Add an event at the end of the case's chain. The case row is locked, so two appends
    to one case take turns (PostgreSQL row lock; SQLite's write lock)."""
    session.exec(select(Case).where(Case.id == case.id).with_for_update()).one()
    last = session.exec(select(CustodyEvent).where(CustodyEvent.case_id == case.id)
                        .order_by(col(CustodyEvent.seq).desc())).first()
    return append_after(session=session, now=now, case=case, last=last, kind=kind, body=body,
                        actor_id=actor_id, site_id=site_id, device=device, device_at=device_at,
                        request_key=request_key)


def append_after(
    *, session: Session, now: datetime, case: Case, last: Link | None, kind: str,
    body: dict[str, Any], actor_id: int | None, site_id: int | None, device: str | None = None,
    device_at: datetime | None = None, request_key: str | None = None, flush: bool = True,
) -> CustodyEvent:
    """`append` for a caller that holds the case's row lock and has just read its chain:
    `last` is the chain's last event (None for an empty chain). Two statements fewer per
    scan; the unique (case, seq) still refuses a caller that lied. With `flush` False the
    event is only added to the session, and the caller flushes it with its other changes
    (one pass of the unit of work instead of several)."""
    event = CustodyEvent(case_id=case.id, seq=(last.seq + 1) if last else 1,  # type: ignore[arg-type]
                         at=now, device_at=device_at, kind=kind, actor_id=actor_id,
                         site_id=site_id, device=device, body=canonical_json(body),
                         prev_hash=last.hash if last else GENESIS, hash="",
                         request_key=request_key)
    event.hash = event_hash(event, event.prev_hash)
    session.add(event)
    if flush:
        session.flush()
    return event


def checkpoint(*, session: Session, now: datetime, signer: Signer) -> LedgerCheckpoint:
    """Sign the current head of every case's chain with the installation's key (recorded in
    label_key, where verification finds it after any rotation)."""
    register_key(session=session, now=now, signer=signer)
    private_key = signer.private_key
    heads = canonical_json({str(case_id): [seq, digest] for case_id, seq, digest in _heads(session)})
    key_id = payload.key_id_of(private_key.public_key())
    row = LedgerCheckpoint(at=now, heads=heads, key_id=key_id.hex(),
                           signature=private_key.sign(CHECKPOINT_DOMAIN + heads.encode()).hex())
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class Problem:
    case_id: int
    seq: int | None
    what: str  # edited, deleted, inserted or reordered, truncated, checkpoint

    def __str__(self) -> str:
        where = f"case {self.case_id}" + (f", event {self.seq}" if self.seq is not None else "")
        return f"{where}: {self.what}"


def verify(*, session: Session) -> list[Problem]:
    """Every break in every chain, and every disagreement with the latest checkpoint."""
    problems: list[Problem] = []
    chains: dict[int, list[CustodyEvent]] = {}
    for event in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.case_id),
                                                              col(CustodyEvent.seq))):
        chains.setdefault(event.case_id, []).append(event)
    for case_id, events in chains.items():
        problems.extend(_check_chain(case_id, events))
    problems.extend(_check_checkpoint(session, chains))
    return problems


def _check_chain(case_id: int, events: list[CustodyEvent]) -> list[Problem]:
    found: list[Problem] = []
    expected_prev, expected_seq = GENESIS, 1
    for event in events:
        if event.seq != expected_seq:
            found.append(Problem(case_id, expected_seq,
                                 f"missing: events {expected_seq}-{event.seq - 1} were deleted"
                                 if event.seq > expected_seq else "sequence repeated"))
        if event.hash != event_hash(event, event.prev_hash):
            found.append(Problem(case_id, event.seq, "edited: its content does not match its "
                                                     "hash"))
        elif event.prev_hash != expected_prev:
            found.append(Problem(case_id, event.seq, "inserted or reordered: it does not follow "
                                                     "the event before it"))
        expected_prev, expected_seq = event.hash, event.seq + 1
    return found


def _check_checkpoint(session: Session, chains: dict[int, list[CustodyEvent]]) -> list[Problem]:
    latest = session.exec(select(LedgerCheckpoint).order_by(col(LedgerCheckpoint.id).desc())).first()
    if latest is None:
        return []
    keys = [Ed25519PublicKey.from_public_bytes(_b64(row.public_key)) for row in
            session.exec(select(LabelKey).where(LabelKey.key_id == latest.key_id))]
    if not any(_signed(key, latest) for key in keys):
        return [Problem(0, None, f"checkpoint {latest.id}: its signature does not hold")]
    found = []
    for case_id, (seq, digest) in json.loads(latest.heads).items():
        chain = {event.seq: event.hash for event in chains.get(int(case_id), [])}
        if seq not in chain:
            found.append(Problem(int(case_id), seq, f"truncated: the chain ends before event "
                                                    f"{seq}, which checkpoint {latest.id} saw"))
        elif chain[seq] != digest:
            found.append(Problem(int(case_id), seq, f"rewritten: event {seq} differs from the "
                                                    f"one checkpoint {latest.id} signed"))
    return found


def _signed(key: Ed25519PublicKey, row: LedgerCheckpoint) -> bool:
    try:
        key.verify(bytes.fromhex(row.signature), CHECKPOINT_DOMAIN + row.heads.encode())
        return True
    except (InvalidSignature, ValueError):
        return False


def _heads(session: Session) -> list[tuple[int, int, str]]:
    """Each case's last event, found by the database on the (case, seq) index rather than
    by reading every event into Python: a quarter of the time at a million events, which on
    SQLite is how long a checkpoint holds up every writer."""
    last = (select_columns(col(CustodyEvent.case_id), func.max(CustodyEvent.seq).label("seq"))
            .group_by(col(CustodyEvent.case_id)).subquery())
    query = (select_columns(col(CustodyEvent.case_id), col(CustodyEvent.seq), col(CustodyEvent.hash))
             .join(last, and_(col(CustodyEvent.case_id) == last.c.case_id,
                              col(CustodyEvent.seq) == last.c.seq))
             .order_by(col(CustodyEvent.case_id)))
    return [(case_id, seq, digest) for case_id, seq, digest in session.execute(query)]


def events_of(*, session: Session, case: Case) -> list[CustodyEvent]:
    return list(session.exec(_events_query(), params={"case_id": case.id}))


@functools.cache
def _events_query() -> SelectOfScalar[CustodyEvent]:
    """Built once (every scan reads its case's chain): SQLAlchemy keeps the cache key of a
    statement object it has seen."""
    return (select(CustodyEvent).where(CustodyEvent.case_id == bindparam("case_id"))
            .order_by(col(CustodyEvent.seq)))


def chain_of(*, session: Session, case_id: int) -> list[Link]:
    """A case's events in order as plain rows, without building a mapped object per event:
    what a scan reads its case's state from and appends after."""
    return list(session.execute(_chain_query(), {"case_id": case_id}).all())


@functools.cache
def _chain_query() -> Any:
    return (select_columns(col(CustodyEvent.seq), col(CustodyEvent.hash), col(CustodyEvent.at),
                           col(CustodyEvent.kind), col(CustodyEvent.actor_id),
                           col(CustodyEvent.site_id), col(CustodyEvent.body))
            .where(col(CustodyEvent.case_id) == bindparam("case_id"))
            .order_by(col(CustodyEvent.seq)))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text)
