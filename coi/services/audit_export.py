"""The audit trail as files: the whole of a filter, every page of it, recorded in the trail
itself, read in batches and written by one small writer per format (`WRITERS`) that yields
the file in pieces, so an export of a million rows is sent without being held in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from coi.core.access import Actor, sites_for
from coi.core.canonical import canonical_json
from coi.models import AuditEntry
from coi.services import audit
from coi.services.audit import AuditFilter, AuditRow

COLUMNS = ("id", "at", "actor", "actor_id", "via", "entity", "entity_id", "action", "field",
           "old_value", "new_value", "reason", "sites")
# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...) in a
# reason would be a link to anywhere): such cells are written as text, with a leading '.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_PIECE = 500
BATCH = 1000  # rows read from the database at a time


@dataclass(frozen=True)
class Export:
    """An export under way: its filter, and the newest row when it began (later rows are not
    part of it, so it is complete as of that moment however long the download takes)."""

    wanted: AuditFilter
    kind: str
    at: datetime
    by: str
    upto: int
    total: int


def begin_export(*, session: Session, now: datetime, actor: Actor, wanted: AuditFilter,
                 kind: str) -> Export:
    """Check the filter, note where the trail ends now, and record the export in the trail
    itself (who exported which rows, in which form). The caller commits before the rows are
    read with `exported_rows`."""
    conditions = audit.conditions_for(session, actor, wanted)
    upto = session.exec(select(func.max(AuditEntry.id))).one() or 0
    total = audit.count_of(session, [*conditions, col(AuditEntry.id) <= upto])
    # Seen by the readers of the sites whose rows it may hold (and by global readers).
    site = {audit.site_named(session, wanted.site)} if wanted.site else None
    if actor.global_admin:
        sites = site or set()
    else:
        readable = sites_for(actor, "audit.view")
        sites = readable & site if site is not None else readable
    audit.record(session=session, now=now, actor=actor, entity="audit_trail", entity_id=kind,
                 action="export", reason=f"Audit trail exported as {kind.upper()} ({total} rows)",
                 changes={"filter": (None, canonical_json(wanted.as_record())),
                          "rows": (None, total)},
                 sites=sites)
    return Export(wanted, kind, now, actor.username, upto, total)


def exported_rows(*, engine: Engine, actor: Actor, export: Export,
                  batch: int = BATCH) -> Iterator[AuditRow]:
    """Every row of the export, newest first, read `batch` rows at a time in a session of its
    own (the response is sent after the request's session is closed). Each batch is read in
    a transaction that ends before its rows are handed on, so a slow download holds no
    transaction open and memory holds one batch."""
    with Session(engine) as own:
        conditions = audit.conditions_for(own, actor, export.wanted)
        below = export.upto + 1
        while True:
            rows = audit.rows_where(own, [*conditions, col(AuditEntry.id) < below], limit=batch)
            own.rollback()
            yield from rows
            if len(rows) < batch:
                return
            below = rows[-1].id


def utc_text(value: datetime) -> str:
    """ISO 8601 in UTC with its offset: 2026-11-22T09:00:00+00:00."""
    return value.astimezone(UTC).isoformat()


def document(row: AuditRow) -> dict[str, Any]:
    return {"id": row.id, "at": utc_text(row.at), "actor": row.actor_name, "actor_id": row.actor_id,
            "via": row.via, "entity": row.entity, "entity_id": row.entity_id,
            "action": row.action, "field": row.field, "old_value": row.old_value,
            "new_value": row.new_value, "reason": row.reason, "sites": list(row.sites)}


def neutralised(value: object) -> str:
    """A cell a spreadsheet shows as the text it is, never runs."""
    if value is None:
        return ""
    cell = str(value)
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def write_csv(export: Export, rows: Iterable[AuditRow]) -> Iterator[str]:
    """UTF-8 with a byte-order mark (so spreadsheets read names right), one header line, a
    line per row; sites separated by spaces."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(COLUMNS)
    for count, row in enumerate(rows, 1):
        cells = document(row) | {"sites": " ".join(row.sites)}
        writer.writerow([neutralised(cells[name]) for name in COLUMNS])
        if count % ROWS_PER_PIECE == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def write_json(export: Export, rows: Iterable[AuditRow]) -> Iterator[str]:
    """One JSON document: who exported which filter when, the entries, and their count last
    (it is known once they are all written)."""
    head = {"exported_at": utc_text(export.at), "exported_by": export.by,
            "filter": export.wanted.as_record()}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "entries": ['
    count, piece = 0, []
    for count, row in enumerate(rows, 1):
        piece.append(("," if count > 1 else "") + "\n" + json.dumps(document(row), ensure_ascii=False))
        if count % ROWS_PER_PIECE == 0:
            yield "".join(piece)
            piece.clear()
    yield "".join(piece) + f'\n], "count": {count}}}\n'


def _drain(buffer: io.StringIO) -> str:
    piece = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return piece


Writer = Callable[[Export, Iterable[AuditRow]], Iterator[str]]
WRITERS: dict[str, Writer] = {"csv": write_csv, "json": write_json}
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
