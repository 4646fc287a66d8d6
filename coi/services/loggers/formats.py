"""Saved logger formats: a column mapping a person gave for a file the readers could not place,
kept under a name for every file of the same layout (`coldchain.layout_of` fingerprints the
delimiter, the header's names and the cells per row), so the next such file reads by itself.

Master data: saving is audited with the mapping; a new mapping for a layout retires the one
in use (audited too), so one mapping at most is in use per layout and none is ever edited."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any, BinaryIO, cast

from sqlalchemy import update
from sqlmodel import Session, col, select

from coi.core.access import Actor
from coi.core.canonical import canonical_json
from coi.core.errors import Conflict, InvalidInput
from coi.models import LoggerFormat
from coi.services import audit
from coldchain import BadMapping, ColumnMapping, Layout, layout_of, mapping_document, mapping_from

NAME_MAX = 80


def mapping_given(data: Mapping[str, Any] | str | None) -> ColumnMapping | None:
    """The mapping a form, a JSON body or the command line gave (None: none given), or an
    InvalidInput saying which part cannot be used."""
    if data is None or (isinstance(data, str) and not data.strip()):
        return None
    if isinstance(data, Mapping) and not any(
            value not in (None, "") for value in data.values()):
        return None
    try:
        return mapping_from(data)
    except BadMapping as error:
        raise InvalidInput(f"The column mapping cannot be used: {error}.",
                           [{"field": "mapping", "message": str(error)}]) from None


def layout(stream: IO[bytes], filename: str) -> Layout | None:
    """The file's layout (the stream is put back where it was)."""
    return layout_of(cast(BinaryIO, stream), name=filename)


def in_use(*, session: Session, fingerprint: str) -> LoggerFormat | None:
    return session.exec(select(LoggerFormat).where(
        LoggerFormat.fingerprint == fingerprint,
        col(LoggerFormat.retired_at).is_(None))).first()


def mapping_of(saved: LoggerFormat) -> ColumnMapping:
    return mapping_from(json.loads(saved.mapping))


def save(*, session: Session, now: datetime, actor: Actor, name: str, found: Layout,
         mapping: ColumnMapping, reason: str) -> LoggerFormat:
    """Keep `mapping` as the format `name` for files of the layout `found`; the format in
    use for that layout, if any, is retired in the same transaction."""
    name = " ".join(name.split())
    if not 0 < len(name) <= NAME_MAX:
        raise InvalidInput(f"Name the format (up to {NAME_MAX} characters).",
                           [{"field": "format_name", "message": "Give the format a name."}])
    if session.exec(select(LoggerFormat.id).where(LoggerFormat.name == name)).first() is not None:
        raise Conflict(f"A format named {name!r} exists already: choose another name.")
    before = in_use(session=session, fingerprint=found.fingerprint)
    if before is not None:
        session.execute(update(LoggerFormat).where(col(LoggerFormat.id) == before.id)
                        .values(retired_at=now, retired_by_id=actor.user_id))
        audit.record(session=session, now=now, actor=actor, entity="logger_format",
                     entity_id=before.id, action="update", reason=f"Replaced by format {name!r}",
                     changes={"retired_at": (None, now)})
    saved = LoggerFormat(name=name, fingerprint=found.fingerprint,
                         mapping=canonical_json(mapping_document(mapping)),
                         columns=canonical_json(list(found.columns)), created_at=now,
                         created_by_id=actor.user_id)  # type: ignore[arg-type]
    session.add(saved)
    session.flush()
    audit.record(session=session, now=now, actor=actor, entity="logger_format", entity_id=saved.id,
                 action="create", reason=reason,
                 changes={"name": (None, name), "fingerprint": (None, found.fingerprint),
                          "mapping": (None, saved.mapping)})
    return saved


def formats(*, session: Session) -> list[LoggerFormat]:
    """Every saved format, in use first, newest first."""
    return list(session.exec(select(LoggerFormat).order_by(
        col(LoggerFormat.retired_at).is_not(None), col(LoggerFormat.id).desc())))
