"""A custody history for the scan benchmark: N custody events over M cases, loaded in bulk.

`bench/scan.py --preload-events N --preload-cases M` calls `preload` after the benchmark's
sites, product, route and people exist and before its timed cases are enrolled, so the timed
scans run against a database that has been in use for a year. Each preloaded case is what
the services leave behind when a case is taken through the first k events of its route
(k between 1 and a complete route, 17 on CARTX v1; N/M on average): the patient (PHI
encrypted, MRN index), the case with its place on the route and next due time, its units
(the apheresis bag, and the drug-product bag from manufacturing on) in their custody, state
and shelf life, the audit entries of enrolment and unit registration, the e-signatures of
the signed steps (collect, release, infuse) and the custody events themselves: enrol,
register_unit, steps, handoff give/receive pairs and the manufacturing transform, with the
bodies `coi.services.custody` writes (scans, units, signatures and the signed content's
SHA-256), device, device time and idempotency key of a scan sent through the API.

Each case's chain is hashed by `coi.services.ledger.event_hash` itself, so `ledger.verify`
(and `flask coi ledger verify`) finds every chain intact. Events are written in time order
across cases, as a running platform appends them (a case's events are spread over the
table), with explicit ids; the database's sequences and the COI serial counter are moved
past them afterwards. The rows go in without the ORM: executemany on SQLite (in batches, a
large page cache on the loading connection), COPY on PostgreSQL, then VACUUM (ANALYZE) on
PostgreSQL (what autovacuum would do in time: planner statistics, visibility map, hint bits),
and a WAL checkpoint (SQLite) or CHECKPOINT (PostgreSQL) so the timed phase does not pay for
the load. SQLite gets no ANALYZE: the app never runs it.

Not made: login attempts of the signers (the signature fields check passwords through the
login throttle), shipments and logger files. The timed scans do not read them.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from coi.core.canonical import canonical_json
from coi.core.identifiers import CoiId, UnitSerial
from coi.core.phi import PatientIdentity, PhiCipher
from coi.core.route import Route, Step
from coi.core.workflow import WRISTBAND
from coi.db import for_writing
from coi.models import (
    AuditEntry,
    Case,
    CoiSequence,
    CustodyEvent,
    Patient,
    Product,
    Signature,
    Site,
    Unit,
    User,
)
from coi.services import ledger, masterdata, users
from coi.services.signatures import content_hash

PASSWORD = "bench password 1"
BATCH = 20_000  # events per write; the case rows they belong to go first
SPAN = timedelta(days=365)  # the preloaded cases were enrolled over the year before now
# The people of the preloaded history: (username, full name, site code, role).
PEOPLE = (("pl.staff", "Preload Staff", "BOS", "site_staff"),
          ("pl.verifier", "Preload Verifier", "BOS", "site_staff"),
          ("pl.courier", "Preload Courier", "DEP", "courier"),
          ("pl.coordinator", "Preload Coordinator", "MFG", "coordinator"),
          ("pl.qa", "Preload QA", "MFG", "qa"))

COLUMNS = {
    "patient": ("id", "site_id", "phi", "mrn_index", "created_at", "created_by_id"),
    "therapy_case": ("id", "coi", "patient_id", "product_id", "route_id", "site_id",
                     "manufacturing_site_id", "state", "created_at", "created_by_id", "last_step",
                     "last_step_at", "next_step", "next_due_at", "overdue_alarm_id"),
    "unit": ("id", "serial", "case_id", "kind", "sequence", "state", "custodian_site_id",
             "created_at", "created_by_id", "expires_at", "expiry_check_at"),
    "audit_entry": ("id", "at", "actor_id", "actor_name", "entity", "entity_id", "action", "field",
                    "old_value", "new_value", "reason"),
    "signature": ("id", "signer_id", "signer_name", "meaning", "signed_at", "subject_type",
                  "subject_id", "content_sha256"),
    "custody_event": ("id", "case_id", "seq", "at", "device_at", "kind", "actor_id", "site_id",
                      "device", "body", "prev_hash", "hash", "request_key"),
}
MODELS: dict[str, Any] = {"patient": Patient, "therapy_case": Case, "unit": Unit, "audit_entry": AuditEntry,
          "signature": Signature, "custody_event": CustodyEvent}
ORDER = tuple(COLUMNS)  # parents before children (foreign keys)


@dataclass(slots=True)
class _Event:
    """The fields `ledger.event_hash` reads, without an ORM object per event."""

    case_id: int
    seq: int
    at: datetime
    device_at: datetime | None
    kind: str
    actor_id: int | None
    site_id: int | None
    device: str | None
    body: str
    request_key: str | None
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True)
class _Person:
    id: int
    username: str
    full_name: str
    site_id: int


@dataclass
class _UnitState:
    id: int
    serial: UnitSerial
    kind: str
    created_at: datetime
    created_by_id: int
    custodian_site_id: int
    state: str = "registered"
    expires_at: datetime | None = None
    expiry_check_at: datetime | None = None


@dataclass
class Loaded:
    """What the preload wrote: counts per table and per event kind, and how long it took."""

    events: int = 0
    cases: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"events": self.events, "cases": self.cases, "rows": self.rows,
                "kinds": self.kinds, "seconds": round(self.seconds, 1)}


def events_per_case(events: int, cases: int, longest: int, seed: int = 20261204) -> list[int]:
    """`cases` counts from 1 to `longest` summing to `events`: the cases are at every point of
    their route, not all at the same step. Neighbours trade events in pairs, so the sum holds."""
    if not cases <= events <= cases * longest:
        raise ValueError(f"{events} events over {cases} cases: each case has 1 to {longest} "
                         f"events (a complete route), so choose {-(-events // longest)} to "
                         f"{events} cases")
    base, extra = divmod(events, cases)
    counts = [base + (1 if number < extra else 0) for number in range(cases)]
    rng = random.Random(seed)  # noqa: S311 - a reproducible spread, not security
    for number in range(0, cases - 1, 2):
        give, take = counts[number], counts[number + 1]
        shift = rng.randint(-min(give - 1, longest - take), min(longest - give, take - 1))
        counts[number], counts[number + 1] = give + shift, take - shift
    return counts


@dataclass(frozen=True)
class _Planned:
    """One event of a route's plan: registering a unit, or one side of a step."""

    kind: str  # register_unit, step, handoff_give, handoff_receive, transform
    step: Step | None
    unit_kind: str | None = None


def route_plan(route: Route) -> list[_Planned]:
    """The events of a case taken through its whole route, after its enrol event: each unit
    registered just before the first step that scans it, then each step (a handoff as give
    and receive)."""
    plan: list[_Planned] = []
    registered: set[str] = set()
    for step in route.steps[1:]:
        for kind in step.scan:
            if kind != WRISTBAND and kind not in registered:
                registered.add(kind)
                plan.append(_Planned("register_unit", None, kind))
        if step.handoff:
            plan += [_Planned("handoff_give", step), _Planned("handoff_receive", step)]
        else:
            plan.append(_Planned("transform" if step.makes else "step", step))
    return plan


class _Writer:
    """Rows into tables in bulk, on the engine's own DBAPI connection."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self.raw = engine.raw_connection()
        self.cursor = self.raw.cursor()
        if self.dialect == "sqlite":
            # A large page cache for this connection only: the unique indexes on the event
            # hash and the idempotency key take rows at random places.
            self.cursor.execute("PRAGMA cache_size=-1000000")
            self.times = {table: [n for n, name in enumerate(columns) if name.endswith("_at")
                                  or name == "at"] for table, columns in COLUMNS.items()}

    def write(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = COLUMNS[table]
        if self.dialect == "sqlite":
            at = self.times[table]
            converted = [tuple(_sqlite_time(value) if n in at and value is not None else value
                               for n, value in enumerate(row)) for row in rows]
            self.cursor.execute("BEGIN IMMEDIATE")
            self.cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                    f"({', '.join('?' * len(columns))})", converted)
            self.cursor.execute("COMMIT")
        else:
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
            self.raw.commit()

    def close(self) -> None:
        if self.dialect == "sqlite":
            self.cursor.execute("PRAGMA cache_size=-2000")  # SQLite's default, for the pool
        self.cursor.close()
        self.raw.close()


def _sqlite_time(at: datetime) -> str:
    """A UTC time as SQLAlchemy's DateTime writes it to SQLite (what the app reads back)."""
    return at.astimezone(UTC).isoformat(" ", "microseconds")[:26]


class _Generator:
    """Cases, their rows and their events; events come out in time order across cases."""

    def __init__(self, session: Session, cipher: PhiCipher, now: datetime, events: int,
                 cases: int) -> None:
        self.cipher, self.now = cipher, now
        product = session.exec(select(Product).where(Product.code == "CARTX")).one()
        row = masterdata.current_route(session=session, product=product)
        assert row is not None and product.id is not None and row.id is not None
        self.product_id, self.route_id = product.id, row.id
        self.route = masterdata.route_of(row)
        self.plan = route_plan(self.route)
        self.sites = {site.code: site for site in session.exec(select(Site))}
        self.people = _people(session, now - SPAN - timedelta(days=30), self.sites)
        self.by_role = {role: self.people[username] for username, _n, _s, role in PEOPLE
                        if username != "pl.verifier"}
        self.verifier = self.people["pl.verifier"]
        self.counts = events_per_case(events, cases, 1 + len(self.plan))
        self.next_id = {table: (session.exec(select(func.max(col(MODELS[table].id)))).one() or 0) + 1
                        for table in COLUMNS}
        self.serials: dict[str, int] = {}  # COI year -> last serial number used
        self.rng = random.Random(20261204)  # noqa: S311 - reproducible, not security
        self.rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in COLUMNS}
        self.kinds: dict[str, int] = {}

    def next_event_id(self) -> int:
        """Event ids are given as events leave the time-ordered merge."""
        return self._id("custody_event")

    def _id(self, table: str) -> int:
        number = self.next_id[table]
        self.next_id[table] = number + 1
        return number

    def events(self) -> Iterator[tuple[datetime, _Event]]:
        """Every case's events, merged by time: a case's events span about a day, so only
        the cases of the last day wait in the heap."""
        waiting: list[tuple[datetime, int, _Event]] = []
        spacing = SPAN / len(self.counts)
        start = self.now - SPAN - timedelta(days=2)
        order = 0
        for number, count in enumerate(self.counts):
            enrolled = start + spacing * number + timedelta(microseconds=self.rng.randint(0, 999_999))
            while waiting and waiting[0][0] < enrolled:
                at, _order, event = heapq.heappop(waiting)
                yield at, event
            for event in self._case(number, enrolled, count):
                order += 1
                heapq.heappush(waiting, (event.at, order, event))
        while waiting:
            at, _order, event = heapq.heappop(waiting)
            yield at, event

    def _case(self, number: int, enrolled: datetime, count: int) -> list[_Event]:
        staff, bos, mfg = self.by_role["site_staff"], self.sites["BOS"], self.sites["MFG"]
        assert bos.id is not None and mfg.id is not None and bos.facility_id is not None
        year = enrolled.astimezone(ZoneInfo(bos.timezone)).year
        serial = self.serials[f"{year % 100:02d}"] = self.serials.get(f"{year % 100:02d}", 0) + 1
        coi = CoiId.issue(bos.facility_id, year, serial)
        case_id, patient_id = self._id("therapy_case"), self._id("patient")
        mrn = f"L-{number}"
        self.rows["patient"].append((patient_id, bos.id, self.cipher.encrypt(PatientIdentity(
            f"Preload Patient {number}", date(1950 + number % 50, 1 + number % 12, 1 + number % 28),
            mrn)), self.cipher.mrn_index(mrn), enrolled, staff.id))
        self._audit(enrolled, staff, "patient", str(patient_id),
                    {"phi": "encrypted", "site": bos.code}, f"enrolment, case {coi.text}")
        chain: list[_Event] = []
        units: dict[str, _UnitState] = {}  # kind -> unit
        case = {"state": "enrolled", "last_step": "enrol", "last_step_at": enrolled}
        self._next(case, self.route.steps[0], enrolled)
        self._append(chain, case_id, enrolled, "enrol", staff.id, bos.id, None,
                     {"coi": coi.text, "product": "CARTX", "route_version": self.route.version,
                      "manufacturing_site": mfg.code})
        at = enrolled
        for planned in self.plan[:count - 1]:
            at += timedelta(minutes=self.rng.randint(5, 90), microseconds=self.rng.randint(0, 999_999))
            if planned.kind == "register_unit":
                assert planned.unit_kind is not None
                self._register(chain, case_id, coi, planned.unit_kind, at, units)
            else:
                assert planned.step is not None
                self._scan(chain, case_id, coi, planned, at, units, case)
        self.rows["therapy_case"].append((
            case_id, coi.compact, patient_id, self.product_id, self.route_id, bos.id, mfg.id,
            case["state"], enrolled, staff.id, case["last_step"], case["last_step_at"],
            case.get("next_step"), case.get("next_due_at"), None))
        for unit in units.values():
            self.rows["unit"].append((unit.id, unit.serial.compact, case_id, unit.kind, 1, unit.state,
                                      unit.custodian_site_id, unit.created_at, unit.created_by_id,
                                      unit.expires_at, unit.expiry_check_at))
        return chain

    def _register(self, chain: list[_Event], case_id: int, coi: CoiId, kind: str, at: datetime,
                  units: dict[str, _UnitState]) -> None:
        """As `enrolment.register_unit`: drug product by manufacturing, the rest by the clinic."""
        who = self.by_role["coordinator" if kind == "drug_product_bag" else "site_staff"]
        serial = coi.unit(kind, 1)
        units[kind] = _UnitState(self._id("unit"), serial, kind, at, who.id, who.site_id)
        self._audit(at, who, "unit", serial.text, {"kind": kind, "case": coi.text},
                    f"unit registered for case {coi.text}")
        self._append(chain, case_id, at, "register_unit", who.id, who.site_id, None,
                     {"unit": serial.text, "kind": kind, "custodian_site": who.site_id})

    def _scan(self, chain: list[_Event], case_id: int, coi: CoiId, planned: _Planned, at: datetime,
              units: dict[str, _UnitState], case: dict[str, Any]) -> None:
        """One accepted scan as `custody._record` writes it, and its `_apply`."""
        step = planned.step
        assert step is not None
        receiving = planned.kind == "handoff_receive"
        who = self.by_role[(step.to_roles if receiving else step.roles)[0]]
        scanned = [units[kind] for kind in step.scan if kind != WRISTBAND]
        body: dict[str, Any] = {
            "step": step.name, "route_version": self.route.version,
            "phase": "receive" if receiving else "give" if step.handoff else "complete",
            "scans": [{"text": coi.text if kind == WRISTBAND else units[kind].serial.text,
                       "method": "scanned"} for kind in step.scan],
            "units": sorted(unit.serial.compact for unit in scanned)}
        if planned.kind == "transform":
            kinds = {unit.serial.compact: unit.kind for unit in scanned}
            body["parents"] = [s for s in body["units"] if kinds[s] != step.makes]
            body["children"] = [s for s in body["units"] if kinds[s] == step.makes]
        signers = ([(who, step.sign)] if step.sign else []) + (
            [(self.verifier, "verified")] if step.verifiers else [])
        if signers:
            content = {"case": coi.text, **body, "site": who.site_id, "actor": who.id,
                       "at": at.isoformat()}
            digest = content_hash(content)
            signed = []
            for person, meaning in signers:
                signature_id = self._id("signature")
                self.rows["signature"].append((signature_id, person.id, person.full_name, meaning, at,
                                               "custody", f"{coi.text}:{step.name}:{body['phase']}",
                                               digest))
                signed.append({"id": signature_id, "signer": person.full_name, "meaning": meaning})
            body["signatures"], body["signed_sha256"] = signed, digest
        key = hashlib.sha256(f"{who.id}\x00{uuid.uuid4()}".encode()).hexdigest()
        self._append(chain, case_id, at, planned.kind, who.id, who.site_id, "bench-preload", body,
                     device_at=at - timedelta(seconds=self.rng.randint(1, 30)), request_key=key)
        last = step.name == self.route.steps[-1].name
        for unit in scanned:  # coi.services.custody._apply
            shelf = self.route.shelf_life.get(unit.kind)
            if shelf and shelf.from_step == step.name and unit.expires_at is None \
                    and planned.kind != "handoff_give":
                unit.expires_at = at + timedelta(hours=shelf.hours)
                unit.expiry_check_at = unit.expires_at - timedelta(hours=shelf.warn_hours)
            if receiving:
                unit.custodian_site_id = who.site_id
            unit.state = "consumed" if planned.kind == "transform" and unit.kind != step.makes \
                else step.name
            if unit.state == "consumed" or last:
                unit.expiry_check_at = None
        if planned.kind != "handoff_give":
            case.update(last_step=step.name, last_step_at=at,
                        state="complete" if last else "in_progress")
            self._next(case, step, at)

    def _next(self, case: dict[str, Any], step: Step, at: datetime) -> None:
        names = [s.name for s in self.route.steps]
        index = names.index(step.name)
        following = self.route.steps[index + 1] if index + 1 < len(names) else None
        case["next_step"] = following.name if following else None
        case["next_due_at"] = (at + timedelta(hours=following.max_hours)
                               if following and following.max_hours else None)

    def _append(self, chain: list[_Event], case_id: int, at: datetime, kind: str, actor_id: int,
                site_id: int, device: str | None, body: dict[str, Any], *,
                device_at: datetime | None = None, request_key: str | None = None) -> None:
        """`ledger.append_after`: the next seq, the previous hash, the hash by `event_hash`."""
        event = _Event(case_id, len(chain) + 1, at, device_at, kind, actor_id, site_id, device,
                       canonical_json(body), request_key)
        event.prev_hash = chain[-1].hash if chain else ledger.GENESIS
        event.hash = ledger.event_hash(cast(CustodyEvent, event), event.prev_hash)
        chain.append(event)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def _audit(self, at: datetime, who: _Person, entity: str, entity_id: str,
               changes: dict[str, str], reason: str) -> None:
        for name, new in changes.items():
            self.rows["audit_entry"].append((self._id("audit_entry"), at, who.id,
                                             f"{who.full_name} ({who.username})", entity, entity_id,
                                             "create", name, None, new, reason))


def _people(session: Session, now: datetime, sites: dict[str, Site]) -> dict[str, _Person]:
    """The preloaded history's people, made by the user service (once per database)."""
    found = {}
    for username, full_name, site_code, role in PEOPLE:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None:
            user = users.create_user(session=session, now=now, actor=None, username=username,
                                     full_name=full_name, password=PASSWORD, reason="bench preload")
            assert user.id is not None and sites[site_code].id is not None
            users.grant_role(session=session, now=now, actor=None, user_id=user.id,
                             site_id=sites[site_code].id, role=role, reason="bench preload")  # type: ignore[arg-type]
        assert user.id is not None
        found[username] = _Person(user.id, username, user.full_name, sites[site_code].id)  # type: ignore[arg-type]
    session.commit()
    return found


def preload(*, engine: Engine, cipher: PhiCipher, events: int, cases: int,
            log: Any = print) -> Loaded:
    """Write `events` custody events over `cases` cases (see the module docstring)."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session:
        generator = _Generator(session, cipher, now, events, cases)
    writer = _Writer(engine)
    loaded = Loaded(cases=cases)
    pending: list[tuple[Any, ...]] = []

    def flush() -> None:
        generator.rows["custody_event"] = pending[:]
        for table in ORDER:
            writer.write(table, generator.rows[table])
            loaded.rows[table] = loaded.rows.get(table, 0) + len(generator.rows[table])
            generator.rows[table].clear()
        pending.clear()

    try:
        for _at, event in generator.events():
            pending.append((generator.next_event_id(), event.case_id, event.seq, event.at,
                            event.device_at, event.kind, event.actor_id, event.site_id,
                            event.device, event.body, event.prev_hash, event.hash,
                            event.request_key))
            loaded.events += 1
            if len(pending) >= BATCH:
                flush()
                if loaded.events % (10 * BATCH) == 0:
                    log(f"preload: {loaded.events:,} of {events:,} events "
                        f"({time.perf_counter() - started:.0f} s)")
        flush()
    finally:
        writer.close()
    _after(engine, generator)
    loaded.kinds = dict(sorted(generator.kinds.items()))
    loaded.seconds = time.perf_counter() - started
    log(f"preload: {loaded.events:,} events over {cases:,} cases in {loaded.seconds:.0f} s")
    return loaded


def _after(engine: Engine, generator: _Generator) -> None:
    """The COI serial counter and the id sequences past the loaded rows; then statistics
    (PostgreSQL) and a checkpoint, so the timed phase neither trips over them nor pays."""
    facility = generator.sites["BOS"].facility_id
    assert facility is not None
    with Session(for_writing(engine)) as session:
        for year, last in generator.serials.items():
            row = session.get(CoiSequence, (facility, year))
            if row is None:
                session.add(CoiSequence(facility_id=facility, year=year, last_number=last))
            elif row.last_number < last:
                row.last_number = last
                session.add(row)
        session.commit()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in COLUMNS:
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
            # What autovacuum does to an insert-only table after a while: statistics for the
            # planner, the visibility map and hint bits (no first reader writes them).
            for table in COLUMNS:
                connection.execute(text(f"VACUUM (ANALYZE) {table}"))
            connection.execute(text("CHECKPOINT"))
    else:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
