"""The custody ledger: append-only, hash-chained per case, with signed checkpoints over all
chain heads and the identity chain's head (coi.services.seals); `verify` finds any event
edited, deleted, inserted or reordered behind the application's back (ARCHITECTURE section 7).
A checkpoint exported (`export_head`) and kept outside lets `check_head` prove later that the
history up to it was not rewritten, even by someone holding the database and the key."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, bindparam, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from coi.core.canonical import canonical_json
from coi.labels import payload
from coi.models import Case, CustodyEvent, LabelKey, LedgerCheckpoint, RecordSeal
from coi.services import seals
from coi.services.keys import Signer, register_key
from coi.services.seals import Finding


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
# Since migration 0009: the time, the case heads and the identity chain's head.
CHECKPOINT_DOMAIN_V2 = b"coi-ledger-checkpoint-v2\x00"
HEAD_FORMAT = "coi-ledger-head-v1"  # the document `flask coi ledger head` prints


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
    """Sign the current head of every case's chain and of the identity chain, with the
    installation's key (recorded in label_key, where verification finds it after any
    rotation)."""
    register_key(session=session, now=now, signer=signer)
    seals.seal_pending(session=session)  # this transaction's own writes are in the head signed
    private_key = signer.private_key
    heads = canonical_json({str(case_id): [seq, digest] for case_id, seq, digest in _heads(session)})
    seal_seq, seal_hash = seals.head(session=session)
    key_id = payload.key_id_of(private_key.public_key())
    row = LedgerCheckpoint(at=now, heads=heads, key_id=key_id.hex(), signature="",
                           seal_seq=seal_seq, seal_hash=seal_hash)
    row.signature = private_key.sign(statement(row.at, row.heads, seal_seq, seal_hash)).hex()
    session.add(row)
    session.flush()
    return row


def statement(at: datetime, heads: str, seal_seq: int | None, seal_hash: str | None) -> bytes:
    """What a checkpoint's signature is over. Checkpoints from before the identity chain
    (no seal head) signed their case heads alone."""
    if seal_seq is None:
        return CHECKPOINT_DOMAIN + heads.encode()
    return CHECKPOINT_DOMAIN_V2 + canonical_json(
        {"at": _utc(at), "custody": heads, "seals": [seal_seq, seal_hash]}).encode()


@dataclass(frozen=True)
class Problem:
    case_id: int
    seq: int | None
    what: str  # edited, deleted, inserted or reordered, truncated, checkpoint

    def __str__(self) -> str:
        where = f"case {self.case_id}" + (f", event {self.seq}" if self.seq is not None else "")
        return f"{where}: {self.what}"


Chains = dict[int, list[CustodyEvent]]


def read_chains(session: Session) -> Chains:
    """Every case's events in order."""
    chains: Chains = {}
    for event in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.case_id),
                                                              col(CustodyEvent.seq))):
        chains.setdefault(event.case_id, []).append(event)
    return chains


def verify(*, session: Session, chains: Chains | None = None) -> list[Problem | Finding]:
    """Every break in every chain, and every disagreement with the latest checkpoint (the
    identity chain's rows are checked by coi.services.seals.check)."""
    problems: list[Problem | Finding] = []
    chains = read_chains(session) if chains is None else chains
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


def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    return session.exec(select(LedgerCheckpoint).order_by(col(LedgerCheckpoint.id).desc())).first()


def _check_checkpoint(session: Session, chains: Chains) -> list[Problem | Finding]:
    latest = latest_checkpoint(session)
    if latest is None:
        return []
    keys = [Ed25519PublicKey.from_public_bytes(_b64(row.public_key)) for row in
            session.exec(select(LabelKey).where(LabelKey.key_id == latest.key_id))]
    if not any(_signed(key, latest) for key in keys):
        return [Problem(0, None, f"checkpoint {latest.id}: its signature does not hold")]
    found: list[Problem | Finding] = []
    for case_id, (seq, digest) in json.loads(latest.heads).items():
        chain = {event.seq: event.hash for event in chains.get(int(case_id), [])}
        if seq not in chain:
            found.append(Problem(int(case_id), seq, f"truncated: the chain ends before event "
                                                    f"{seq}, which checkpoint {latest.id} saw"))
        elif chain[seq] != digest:
            found.append(Problem(int(case_id), seq, f"rewritten: event {seq} differs from the "
                                                    f"one checkpoint {latest.id} signed"))
    if latest.seal_seq:  # 0: signed over an empty identity chain
        found.extend(_check_seal_head(session, latest.seal_seq, latest.seal_hash or "",
                                      f"checkpoint {latest.id}"))
    return found


def _check_seal_head(session: Session, seq: int, digest: str, whose: str) -> list[Finding]:
    held = session.exec(select(RecordSeal.hash).where(RecordSeal.seq == seq)).first()
    if held is None:
        return [Finding(f"seal {seq}", f"truncated: the identity chain ends before seal {seq}, "
                                       f"which {whose} saw")]
    if held != digest:
        return [Finding(f"seal {seq}", f"rewritten: seal {seq} differs from the one {whose} "
                                       "signed")]
    return []


def _signed(key: Ed25519PublicKey, row: LedgerCheckpoint) -> bool:
    try:
        key.verify(bytes.fromhex(row.signature),
                   statement(row.at, row.heads, row.seal_seq, row.seal_hash))
        return True
    except (InvalidSignature, ValueError):
        return False


# ---------------------------------------------------------------- exported heads

def export_head(*, session: Session) -> dict[str, Any] | None:
    """The latest checkpoint as a document to keep outside the system (print it, mail it to
    QA, store it with another party): None if there is none that signs the identity chain."""
    latest = latest_checkpoint(session)
    if latest is None or latest.seal_seq is None:
        return None
    key = next((row for row in session.exec(select(LabelKey).where(
        LabelKey.key_id == latest.key_id)) if _signed(
        Ed25519PublicKey.from_public_bytes(_b64(row.public_key)), latest)), None)
    if key is None:
        return None
    return {"format": HEAD_FORMAT, "checkpoint": latest.id, "at": _utc(latest.at),
            "custody": json.loads(latest.heads), "seals": [latest.seal_seq, latest.seal_hash],
            "key_id": latest.key_id, "public_key": key.public_key, "signature": latest.signature}


class HeadRefused(ValueError):
    """A document that is not an exported head, or whose signature does not hold."""


def check_head(*, session: Session, head: dict[str, Any], chains: Chains) -> list[Problem | Finding]:
    """Is the history the exported `head` saw still here, unchanged? Its seal and every case
    head it names must be in the chains with the same hashes (the chains themselves, checked
    link by link from their start by `verify` and `seals.check`, then link to it). The head
    is trusted as kept outside, with the public key it names: a chain rewritten and signed
    again with the installation's key still differs from it. Raises HeadRefused for a
    document that is not an intact head."""
    try:
        if head.get("format") != HEAD_FORMAT:
            raise HeadRefused(f"not an exported ledger head (format {HEAD_FORMAT})")
        at = datetime.fromisoformat(head["at"])
        heads = canonical_json(head["custody"])
        seal_seq, seal_hash = int(head["seals"][0]), str(head["seals"][1])
        key = Ed25519PublicKey.from_public_bytes(_b64(head["public_key"]))
        key.verify(bytes.fromhex(head["signature"]), statement(at, heads, seal_seq, seal_hash))
        custody = [(int(case_id), int(seq), str(digest))
                   for case_id, (seq, digest) in head["custody"].items()]
        checkpoint_id = int(head["checkpoint"])
    except HeadRefused:
        raise
    except InvalidSignature:
        raise HeadRefused("its signature does not hold: the document was altered") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise HeadRefused(f"not an exported ledger head ({type(error).__name__}: {error})") from None
    whose = f"the exported head of {head['at']}"
    found: list[Problem | Finding] = []
    if not session.exec(select(LabelKey).where(LabelKey.public_key == head["public_key"])).first():
        found.append(Finding("exported head", "signed by a key this database has no record of"))
    for case_id, seq, digest in custody:
        chain = {event.seq: event.hash for event in chains.get(case_id, [])}
        if seq not in chain:
            found.append(Problem(case_id, seq, f"truncated: the chain ends before event {seq}, "
                                               f"which {whose} saw"))
        elif chain[seq] != digest:
            found.append(Problem(case_id, seq, f"rewritten: event {seq} differs from the one "
                                               f"{whose} saw"))
    if seal_seq:
        found.extend(_check_seal_head(session, seal_seq, seal_hash, whose))
    kept = session.get(LedgerCheckpoint, checkpoint_id)
    if kept is None:
        found.append(Finding(f"checkpoint {checkpoint_id}", f"missing: deleted, though {whose} "
                                                            "is its copy"))
    elif kept.signature != head["signature"]:
        found.append(Finding(f"checkpoint {kept.id}", f"rewritten: it differs from its copy, "
                                                      f"{whose}"))
    return found


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


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text)
