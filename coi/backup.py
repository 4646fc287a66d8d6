"""`flask coi backup create FOLDER` and `flask coi backup drill FILE`: a PostgreSQL backup
that says what it holds, and the drill that proves it can be restored.

A backup is a pg_dump in its custom format (`pg_restore` reads it) and a manifest beside it:
when it was taken, the migration revision, the number of rows of every table and the dump's
SHA-256. The counts and the dump read the same snapshot of the database (a REPEATABLE READ
transaction exports it, pg_dump --snapshot reads it), so they agree whatever the web
workers and the scheduler write meanwhile.

The drill restores a dump into a scratch database of its own on the configured server,
checks the ledger there with this installation's keys (`flask coi ledger verify`'s checks)
and compares every table's rows with the manifest; the scratch database is dropped
afterwards, also when something failed. A backup that has never been restored is a hope,
not a backup: run the drill on every new backup, and now and then on a machine that holds
only the escrowed keys (docs/operations.md#keys-to-keep-in-escrow).

SQLite is refused: its backup is a copy of the file made by `sqlite3 FILE ".backup COPY"`
(docs/operations.md#sqlite)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlmodel import Session, select

from coi import migrate
from coi.core.phi import PhiCipher, PhiKeyError
from coi.db import make_engine, snapshot
from coi.models import Patient
from coi.services import integrity

FORMAT = "coi-backup 1"
MANIFEST_SUFFIX = ".manifest.json"
SQLITE_HELP = ("SQLite keeps the whole database in one file: back it up with "
               "sqlite3 FILE \".backup COPY\" (see docs/operations.md#sqlite). "
               "flask coi backup works on PostgreSQL.")

backup_cli = AppGroup("backup", help="PostgreSQL backups (pg_dump) and the restore drill.")


class BackupError(click.ClickException):
    """A backup or a drill that cannot be made, with why (exit status 1, nothing left)."""


# ---------------------------------------------------------------- tools and versions

def _postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise BackupError(f"The configured database is {engine.dialect.name}. {SQLITE_HELP}")


def tool_version(tool: str) -> tuple[str, int]:
    """The path and major version of pg_dump or pg_restore on PATH."""
    path = shutil.which(tool)
    if path is None:
        raise BackupError(f"{tool} is not installed: install the PostgreSQL client of the "
                          "server's version (Debian: apt-get install postgresql-client; "
                          "`make` does it when run as root).")
    out = subprocess.run([path, "--version"], capture_output=True, text=True,  # noqa: S603
                         check=False).stdout
    match = re.search(r"\)\s+(\d+)", out)
    if match is None:
        raise BackupError(f"Cannot tell the version of {path} from {out.strip()!r}.")
    return path, int(match[1])


def server_version(connection: Connection) -> tuple[str, int]:
    """The server's version text (15.20) and its major version (15)."""
    number = int(connection.execute(text("SHOW server_version_num")).scalar_one())
    shown = str(connection.execute(text("SHOW server_version")).scalar_one()).split()[0]
    return shown, number // 10000


def check_client(tool: str, server_major: int, server_shown: str) -> tuple[str, int]:
    """pg_dump and pg_restore must be of the server's major version or newer: an older one
    refuses the server (pg_dump) or cannot read the dump (pg_restore). Returns the path and
    the tool's major version."""
    path, major = tool_version(tool)
    if major < server_major:
        raise BackupError(
            f"{tool} is version {major} ({path}) but the server is PostgreSQL {server_shown}: "
            f"install postgresql-client-{server_major} and put its folder first in PATH "
            f"(Debian: /usr/lib/postgresql/{server_major}/bin).")
    return path, major


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The URL for libpq's tools, and their environment: the password travels in PGPASSWORD,
    never on a command line that `ps` shows."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


# ---------------------------------------------------------------- counts

def table_counts(connection: Connection) -> dict[str, int]:
    """Rows of every table outside PostgreSQL's own schemas, as {"schema.table": rows}."""
    tables = connection.execute(text(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
        "('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_toast%' "
        "ORDER BY schemaname, tablename")).all()
    counts = {}
    for schema, table in tables:
        quoted = f'"{schema.replace(chr(34), chr(34) * 2)}"."{table.replace(chr(34), chr(34) * 2)}"'
        counts[f"{schema}.{table}"] = int(connection.execute(
            text(f"SELECT count(*) FROM {quoted}")).scalar_one())  # noqa: S608 (names from pg_tables)
    return counts


def _revision(connection: Connection) -> str | None:
    exists = connection.execute(text("SELECT to_regclass('alembic_version')")).scalar()
    if exists is None:
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- create

def create(engine: Engine, folder: Path, now: datetime) -> Path:
    """Dump the database into `folder` with its manifest; returns the manifest's path. The
    counts and the dump read one exported snapshot. On any failure nothing is left."""
    _postgres_only(engine)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = f"coi-{now.strftime('%Y%m%dT%H%M%SZ')}"
    dump, manifest = folder / f"{stem}.dump", folder / f"{stem}{MANIFEST_SUFFIX}"
    if dump.exists() or manifest.exists():
        raise BackupError(f"{dump} exists already: one backup per second and folder.")
    partial = folder / f".{stem}.dump.partial"
    manifest_partial = folder / f".{stem}{MANIFEST_SUFFIX}.partial"
    command_url, env = _libpq(engine.url)
    complete = False
    try:
        # Made 0600 before pg_dump writes into it: encrypted patient data, but password
        # hashes and everything else in clear.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
            with connection.begin():
                connection.execute(text("SET TRANSACTION READ ONLY"))
                shown, major = server_version(connection)
                pg_dump, dump_major = check_client("pg_dump", major, shown)
                exported = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                counts = table_counts(connection)
                revision = _revision(connection)
                # pg_dump reads the snapshot while this transaction keeps it alive.
                done = subprocess.run(  # noqa: S603
                    [pg_dump, "--format=custom", f"--snapshot={exported}", f"--file={partial}",
                     f"--dbname={command_url}"], env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
        document = {
            "format": FORMAT, "created_at": now.isoformat(), "revision": revision,
            "server_version": shown, "pg_dump": pg_dump, "pg_dump_major": dump_major,
            "database": engine.url.database, "tables": counts,
            "dump": {"file": dump.name, "bytes": partial.stat().st_size, "sha256": sha256_of(partial)},
        }
        os.close(os.open(manifest_partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        manifest_partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        partial.rename(dump)
        manifest_partial.rename(manifest)
        complete = True
    finally:
        leftovers = [partial, manifest_partial] + ([] if complete else [dump, manifest])
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
    return manifest


# ---------------------------------------------------------------- drill

@dataclass
class Drill:
    """What a drill found: `problems` empty means the backup restores intact."""

    manifest: dict[str, Any]
    lines: list[str] = field(default_factory=list)  # what was checked, and how it went
    problems: list[str] = field(default_factory=list)
    scratch: str = ""


def read_manifest(path: Path) -> tuple[dict[str, Any], Path]:
    """The manifest and the dump it describes, from the path of either, or of the folder
    that holds them (its newest backup: names sort by time)."""
    if path.is_dir():
        found = sorted(path.glob(f"coi-*{MANIFEST_SUFFIX}"))
        if not found:
            raise BackupError(f"No backup in {path}: flask coi backup create {path} makes one.")
        path = found[-1]
    manifest_path = path if path.name.endswith(MANIFEST_SUFFIX) else path.with_name(
        path.name.removesuffix(".dump") + MANIFEST_SUFFIX)
    if not manifest_path.is_file():
        raise BackupError(f"No manifest {manifest_path.name} beside the dump: a backup made by "
                          "flask coi backup create has one.")
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        dump = manifest_path.with_name(manifest["dump"]["file"])
        manifest["tables"] = {str(k): int(v) for k, v in manifest["tables"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BackupError(f"{manifest_path.name} is not a backup manifest: {error}") from None
    if not dump.is_file():
        raise BackupError(f"The dump {dump.name} that {manifest_path.name} describes is missing.")
    return manifest, dump


def drill(engine: Engine, path: Path, cipher: PhiCipher, installation_key: str, now: datetime) -> Drill:
    """Restore the backup at `path` into a scratch database on the configured server, verify
    the ledger there and compare the counts with the manifest; drop the scratch database."""
    _postgres_only(engine)
    manifest, dump = read_manifest(path)
    report = Drill(manifest)
    report.lines.append(f"Backup of {manifest['created_at']}, migration {manifest['revision']}, "
                        f"{sum(manifest['tables'].values()):,} row(s) in {len(manifest['tables'])} table(s).")
    if sha256_of(dump) != manifest["dump"]["sha256"]:
        report.problems.append(f"{dump.name}: its SHA-256 differs from the manifest's (the dump "
                               "was changed or cut short since it was made)")
        return report
    report.lines.append(f"Dump {dump.name}: SHA-256 as in the manifest.")
    with engine.connect() as connection:
        shown, major = server_version(connection)
    pg_restore, _major = check_client("pg_restore", max(major, int(manifest.get("pg_dump_major", 0))),
                                      shown)
    report.scratch = f"coi_drill_{now.strftime('%Y%m%d%H%M%S')}_{uuid.uuid4().hex[:8]}"
    with _scratch_database(engine, report.scratch) as scratch_url:
        _restore_and_compare(pg_restore, dump, scratch_url, report, cipher, installation_key)
    report.lines.append(f"Scratch database {report.scratch} dropped.")
    return report


def _restore_and_compare(pg_restore: str, dump: Path, scratch_url: URL, report: Drill,
                         cipher: PhiCipher, installation_key: str) -> None:
    command_url, env = _libpq(scratch_url)
    done = subprocess.run(  # noqa: S603
        [pg_restore, "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
         f"--dbname={command_url}", str(dump)], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        report.problems.append(f"pg_restore failed: {done.stderr.strip()}")
        return
    report.lines.append(f"Restored into scratch database {report.scratch}.")
    restored = make_engine(scratch_url.render_as_string(hide_password=False))
    try:
        _compare(restored, report, cipher, installation_key)
    finally:
        restored.dispose()


def _compare(restored: Engine, report: Drill, cipher: PhiCipher, installation_key: str) -> None:
    """Counts against the manifest, then the ledger, on the restored database."""
    with restored.connect() as connection:
        counts, revision = table_counts(connection), _revision(connection)
    expected = report.manifest["tables"]
    for table in sorted(set(expected) | set(counts)):
        if table not in counts:
            report.problems.append(f"table {table}: in the manifest ({expected[table]:,} rows), "
                                   "not in the restored database")
        elif table not in expected:
            report.problems.append(f"table {table}: restored ({counts[table]:,} rows), not in the manifest")
        elif counts[table] != expected[table]:
            report.problems.append(f"table {table}: {counts[table]:,} row(s) restored, the manifest "
                                   f"says {expected[table]:,}")
    if not any(p.startswith("table ") for p in report.problems):
        report.lines.append(f"Row counts: all {len(counts)} table(s) as in the manifest.")
    if revision != migrate.head_revision():
        report.problems.append(f"the backup is at migration {revision}, this release's schema is "
                               f"{migrate.head_revision()}: run the drill with the release that made it "
                               "(or restore, then flask coi db upgrade, then flask coi ledger verify)")
        return
    with snapshot(restored) as session:
        verified = integrity.verify(session=session, cipher=cipher, installation_key=installation_key)
        _check_phi(session, cipher, report)
    for why, count in verified.unchecked.items():
        report.lines.append(f"Not re-checked: {count} signature(s): {why}.")
    if verified.findings:
        report.problems.extend(f"ledger: TAMPERED {finding}" for finding in verified.findings)
    else:
        report.lines.append(f"Ledger intact: {verified.events} event(s), {verified.rows} identity "
                            f"record(s) match their {verified.seals} seal(s), {verified.signatures} "
                            "signature(s) match what they sign, with this installation's keys.")


def _check_phi(session: Session, cipher: PhiCipher, report: Drill) -> None:
    """Every patient record decrypts with the configured PHI keys and its MRN index is the
    one the configured index key gives: the drill of escrowed keys proves they open the
    backup. Counts only: no patient data is printed."""
    unreadable = unindexed = 0
    patients = session.exec(select(Patient)).all()
    for patient in patients:
        try:
            identity = cipher.decrypt(patient.phi)
        except PhiKeyError:
            unreadable += 1
            continue
        if cipher.mrn_index(identity.mrn) != patient.mrn_index:
            unindexed += 1
    if unreadable:
        report.problems.append(f"patient data: {unreadable} of {len(patients)} record(s) cannot be "
                               "decrypted with COI_PHI_KEYS (a key missing from the list?)")
    if unindexed:
        report.problems.append(f"patient data: {unindexed} record(s) have an MRN index that "
                               "COI_PHI_INDEX_KEY does not give (another index key?)")
    if not unreadable and not unindexed:
        report.lines.append(f"Patient data: all {len(patients)} record(s) decrypt with COI_PHI_KEYS "
                            "and match their MRN index under COI_PHI_INDEX_KEY.")


@contextmanager
def _scratch_database(engine: Engine, name: str) -> Iterator[URL]:
    """A new, empty database on the configured server, dropped on the way out whatever
    happened (connections the drill left open are closed by WITH (FORCE))."""
    admin = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            try:
                connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            except Exception as error:  # noqa: BLE001 (a clear message, whatever refused it)
                raise BackupError(f"Cannot create the scratch database {name}: {error}. The "
                                  "drill's user must be allowed to create databases "
                                  "(ALTER ROLE ... CREATEDB).") from None
        try:
            yield engine.url.set(database=name)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# ---------------------------------------------------------------- commands

@backup_cli.command("create")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def create_command(folder: Path) -> None:
    """Dump the PostgreSQL database (pg_dump, custom format) into FOLDER with a manifest: time,
    migration revision, rows of every table (read in the dump's own snapshot) and the dump's
    SHA-256. Check it with flask coi backup drill. On SQLite: copy the file (sqlite3 .backup)."""
    engine = current_app.extensions["coi.engine"]
    manifest_path = create(engine, folder, current_app.extensions["coi.clock"].now())
    manifest = json.loads(manifest_path.read_text())
    click.echo(f"Backup {folder / manifest['dump']['file']} ({manifest['dump']['bytes']:,} bytes, "
               f"SHA-256 {manifest['dump']['sha256']}), migration {manifest['revision']}, "
               f"{sum(manifest['tables'].values()):,} row(s) in {len(manifest['tables'])} table(s).")
    click.echo(f"Manifest {manifest_path}. Check it: flask coi backup drill {manifest_path}")


@backup_cli.command("drill")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, path_type=Path))
def drill_command(path: Path) -> None:
    """Restore a backup (its dump or its manifest; of a folder, the newest) into a scratch
    database on the configured server, run the ledger verification there with this
    installation's PHI and signing keys, compare every table's rows with the manifest, and
    drop the scratch database. Exit status 1, with each difference listed, if anything
    differs."""
    app = current_app
    report = drill(app.extensions["coi.engine"], path, app.extensions["coi.phi"],
                   app.extensions["coi.signer"].public_key_text, app.extensions["coi.clock"].now())
    for line in report.lines:
        click.echo(line)
    if report.problems:
        for problem in report.problems:
            click.echo(f"DIFFERS {problem}", err=True)
        click.echo(f"Drill FAILED: {len(report.problems)} problem(s); this backup does not restore "
                   "what it should.", err=True)
        raise SystemExit(1)
    click.echo("Drill passed: the backup restores intact.")
