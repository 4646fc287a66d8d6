"""`flask coi backup create` and `flask coi backup drill` on PostgreSQL, on the demo data set
(patients, signatures, a checkpoint): a backup restores intact with the same counts; a drill
on a manifest that lies, or on a dump of a database changed behind the app's back, fails
with exit status 1 and says what differs; the scratch database is gone afterwards either way.
On SQLite the commands refuse and point at the file copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text

from coi import demo
from coi.app import create_app
from tests.databases import ENGINE, Databases, Template


def postgres_only(test: Any) -> Any:
    skipped = pytest.mark.skipif(ENGINE != "postgresql", reason="pg_dump: PostgreSQL")
    return pytest.mark.postgres_only(skipped(test))


def _load_demo(app, session, clock) -> None:
    demo.load(session=session, now=clock.now(), cipher=app.extensions["coi.phi"],
              signer=app.extensions["coi.signer"])


@pytest.fixture(scope="session")
def backup_demo_template(databases: Databases) -> Template[None]:
    return databases.build("backup_demo", databases.empty, _load_demo)


@pytest.fixture
def template(request: pytest.FixtureRequest, databases: Databases) -> Template[Any]:
    if ENGINE != "postgresql":
        return databases.empty
    return request.getfixturevalue("backup_demo_template")  # type: ignore[no-any-return]


def drills(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text(
            "SELECT datname FROM pg_database WHERE datname LIKE 'coi\\_drill\\_%'")).scalars())


def backup(app, folder: Path) -> Path:
    result = app.test_cli_runner().invoke(args=["coi", "backup", "create", str(folder)])
    assert result.exit_code == 0, result.output
    assert "Check it: flask coi backup drill" in result.output
    manifests = sorted(folder.glob("*.manifest.json"))
    assert len(manifests) == 1
    return manifests[0]


@postgres_only
def test_a_backup_of_the_demo_restores_intact_with_the_same_counts(app, engine, tmp_path) -> None:
    manifest_path = backup(app, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    dump = tmp_path / manifest["dump"]["file"]
    assert dump.stat().st_size == manifest["dump"]["bytes"]
    assert oct(dump.stat().st_mode & 0o777) == "0o600"  # encrypted PHI and password hashes
    assert manifest["revision"]
    assert manifest["tables"]["public.patient"] == len(demo.PATIENTS)
    with engine.connect() as connection:
        assert manifest["tables"]["public.custody_event"] == connection.execute(
            text("SELECT count(*) FROM custody_event")).scalar_one() > 0

    result = app.test_cli_runner().invoke(args=["coi", "backup", "drill", str(tmp_path)])  # newest

    assert result.exit_code == 0, result.output
    assert f"Dump {dump.name}: SHA-256 as in the manifest" in result.output
    assert "Ledger intact" in result.output
    assert "Row counts: all" in result.output
    assert f"Patient data: all {len(demo.PATIENTS)} record(s) decrypt" in result.output
    assert "Drill passed: the backup restores intact." in result.output
    assert not drills(engine)  # the scratch database was dropped


@postgres_only
def test_a_manifest_whose_counts_differ_fails_the_drill(app, engine, tmp_path) -> None:
    manifest_path = backup(app, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["public.custody_event"] += 1  # a row the dump does not hold
    manifest_path.write_text(json.dumps(manifest))

    result = app.test_cli_runner().invoke(args=["coi", "backup", "drill", str(manifest_path)])

    assert result.exit_code == 1, result.output
    assert "the manifest says" in result.output and "public.custody_event" in result.output
    assert "Drill FAILED: 1 problem(s)" in result.output
    assert not drills(engine)


@postgres_only
def test_a_backup_of_a_database_changed_behind_the_apps_back_fails_the_drill(app, engine, tmp_path) -> None:
    with engine.begin() as connection:  # what a hand with psql does: no seal for the change
        connection.execute(text("UPDATE unit SET state = 'discarded' WHERE id = (SELECT min(id) FROM unit)"))
    manifest_path = backup(app, tmp_path)

    result = app.test_cli_runner().invoke(args=["coi", "backup", "drill", str(manifest_path)])

    assert result.exit_code == 1, result.output
    assert "Row counts: all" in result.output  # the counts agree: the ledger tells
    assert "ledger: TAMPERED unit" in result.output
    assert not drills(engine)


@postgres_only
def test_a_drill_with_other_phi_keys_than_the_backups_fails(app, app_config, engine, tmp_path) -> None:
    """What an escrow test catches: the keys kept are not those the patient data needs."""
    manifest_path = backup(app, tmp_path)
    other = create_app(app_config | {"PHI_KEYS": [Fernet.generate_key().decode()]})
    try:
        result = other.test_cli_runner().invoke(args=["coi", "backup", "drill", str(manifest_path)])
    finally:
        other.extensions["coi.engine"].dispose()

    assert result.exit_code == 1, result.output
    count = len(demo.PATIENTS)
    assert f"patient data: {count} of {count} record(s) cannot be decrypted" in result.output
    assert not drills(engine)


@postgres_only
def test_a_dump_changed_after_the_backup_is_refused_before_any_restore(app, engine, tmp_path) -> None:
    manifest_path = backup(app, tmp_path)
    dump = tmp_path / json.loads(manifest_path.read_text())["dump"]["file"]
    dump.write_bytes(dump.read_bytes()[:-100])  # cut short

    result = app.test_cli_runner().invoke(args=["coi", "backup", "drill", str(dump)])

    assert result.exit_code == 1, result.output
    assert "SHA-256 differs from the manifest" in result.output
    assert not drills(engine)


@postgres_only
def test_a_pg_dump_older_than_the_server_is_refused_by_name(app, tmp_path, monkeypatch) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "pg_dump").write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 11.22'\n")
    (tools / "pg_dump").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")

    result = app.test_cli_runner().invoke(args=["coi", "backup", "create", str(tmp_path / "b")])

    assert result.exit_code == 1
    assert "pg_dump is version 11" in result.output and "install postgresql-client-" in result.output
    assert not list((tmp_path / "b").iterdir())  # nothing half-written


@pytest.mark.skipif(ENGINE != "sqlite", reason="the SQLite refusal")
def test_on_sqlite_backup_refuses_and_points_at_the_file_copy(app, tmp_path) -> None:
    result = app.test_cli_runner().invoke(args=["coi", "backup", "create", str(tmp_path / "b")])

    assert result.exit_code == 1
    assert "sqlite3 FILE \".backup COPY\"" in result.output and "docs/operations.md#sqlite" in result.output
    assert not (tmp_path / "b").exists()
