"""Running and inspecting migrations. The app never migrates on start; `flask coi db upgrade`
(and `flask coi init`, which `make run` calls) do."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from coi.db import for_writing

ROOT = Path(__file__).resolve().parent.parent
_MIGRATION_LOG = logging.getLogger("alembic.runtime.migration")


def alembic_config() -> Config:
    return Config(str(ROOT / "alembic.ini"))


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with for_writing(engine).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's migration, read without a word in the log: readiness probes ask it every
    few seconds, and alembic logs two INFO lines ("Context impl ...") each time it looks (an
    upgrade still logs them)."""
    with engine.connect() as connection:
        level = _MIGRATION_LOG.level
        _MIGRATION_LOG.setLevel(logging.WARNING)
        try:
            context = MigrationContext.configure(connection)
        finally:
            _MIGRATION_LOG.setLevel(level)
        return context.get_current_revision()
