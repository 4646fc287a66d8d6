from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from coi import migrate
from coi.core.access import PUBLIC, permission
from coi.labels import available_decoders

blueprint = Blueprint("health", __name__)


@blueprint.route("/healthz")
@permission(PUBLIC)
def healthz() -> Any:
    """Version, database engine and migration state, and the barcode decoders. 503 when the
    database is unreachable or not migrated to the code's head."""
    engine = current_app.extensions["coi.engine"]
    head = migrate.head_revision()
    database: dict[str, Any] = {"engine": engine.dialect.name, "migration_head": head}
    try:
        current = migrate.current_revision(engine)
        database.update(migration_current=current, reachable=True)
        healthy = current == head
        if not healthy:
            database["problem"] = "the database is not at the migration head: run `flask coi db upgrade`"
    except SQLAlchemyError as error:
        database.update(reachable=False, problem=type(error).__name__)
        healthy = False
    decoders = {d.name: {"available": d.available, "version": d.version, "detail": d.detail}
                for d in available_decoders()}
    body = {"status": "ok" if healthy else "unavailable", "version": current_app.config["VERSION"],
            "database": database, "decoders": decoders}
    return jsonify(body), 200 if healthy else 503
