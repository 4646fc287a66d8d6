"""The master-data audit trail: who changed what, when, from which value to which, and why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlmodel import Session, col, select

from coi.core.access import Actor
from coi.core.errors import InvalidInput
from coi.models import AuditEntry, AuditEntrySite

SYSTEM_NAME = "system"

Change = tuple[object, object]  # (old, new)


def record(
    *,
    session: Session,
    now: datetime,
    actor: Actor | None,
    entity: str,
    entity_id: object,
    action: str,
    changes: Mapping[str, Change],
    reason: str,
    actor_name: str | None = None,
    sites: Iterable[int | None] = (),
    via: str | None = None,
) -> list[AuditEntry]:
    """Append one entry per changed field (or one for a change without fields). `sites`: the
    sites the change concerns (their people may read it); `via` defaults to the actor's
    channel (the session or token the request came through)."""
    if not reason.strip():
        raise InvalidInput("A reason is required for every change to master data.",
                           [{"field": "reason", "message": "Give a reason for the change."}])
    name = actor_name or (f"{actor.full_name} ({actor.username})" if actor else SYSTEM_NAME)
    items: list[tuple[str | None, object, object]] = [
        (field, old, new) for field, (old, new) in changes.items() if old != new]
    rows = [
        AuditEntry(
            at=now,
            actor_id=actor.user_id if actor else None,
            actor_name=name,
            entity=entity,
            entity_id=str(entity_id),
            action=action,
            field=field,
            old_value=_text(old),
            new_value=_text(new),
            reason=reason.strip(),
            via=via or (actor.via if actor else None),
        )
        for field, old, new in (items or [(None, None, None)])
    ]
    session.add_all(rows)
    session.flush()
    concerned = sorted({site for site in sites if site is not None})
    if concerned:
        session.add_all([AuditEntrySite(entry_id=row.id, site_id=site)  # type: ignore[arg-type]
                         for row in rows for site in concerned])
        session.flush()
    return rows


def history(*, session: Session, entity: str, entity_id: object) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.entity == entity, AuditEntry.entity_id == str(entity_id))
            .order_by(col(AuditEntry.id))
        )
    )


def recent(*, session: Session, entity: str | None = None, limit: int = 200) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    return list(session.exec(query))


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
