"""`flask coi ...`: database migrations, first start, demo data, PHI key rotation, logger
file import."""

from __future__ import annotations

import json
import os
import signal
from datetime import timedelta
from typing import TextIO

import click
from flask import current_app
from flask.cli import AppGroup
from sqlmodel import select

from coi import config, demo, handlers, manage, migrate
from coi.backup import backup_cli
from coi.core.errors import DomainError
from coi.core.phi import PhiCipher
from coi.db import session_scope, snapshot
from coi.models import Patient, User
from coi.problems import size_text
from coi.services import integrity, ledger, users
from coi.services.loggers import intake, rawfiles
from coldchain import BadMapping, ColumnMapping, read_mapping

cli = AppGroup("coi", help="Chain-of-identity platform commands.")
db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
phi_cli = AppGroup("phi", help="Encrypted patient data.")
ledger_cli = AppGroup("ledger", help="The tamper-evident custody ledger.")
cli.add_command(db_cli)
cli.add_command(phi_cli)
cli.add_command(ledger_cli)
cli.add_command(manage.user_cli)
cli.add_command(manage.role_cli)
cli.add_command(manage.token_cli)
cli.add_command(manage.session_cli)
cli.add_command(backup_cli)


@ledger_cli.command("verify")
@click.option("--head", "head_file", type=click.File("r"), default=None,
              help="An exported head (flask coi ledger head) kept outside: prove the history "
                   "it saw is still here, unchanged.")
def ledger_verify(head_file: TextIO | None) -> None:
    """Check every case's hash chain, the identity chain and every row it covers (patients,
    cases, units, alarms, grants, accounts, signatures, the audit trail, labels), every
    signature against what it signs, and the latest signed checkpoint. Exit status 1, with
    each problem listed, if anything was edited, deleted, inserted or reordered."""
    head = None
    if head_file is not None:
        try:
            head = json.load(head_file)
        except json.JSONDecodeError as error:
            raise click.ClickException(f"{head_file.name} is not JSON: {error}") from None
    with snapshot(_engine()) as session:
        try:
            report = integrity.verify(session=session, cipher=current_app.extensions["coi.phi"],
                                      head=head,
                                      installation_key=current_app.extensions["coi.signer"]
                                      .public_key_text)
        except ledger.HeadRefused as error:
            raise click.ClickException(f"{head_file.name if head_file else 'head'}: "
                                       f"{error}") from None
        latest = ledger.latest_checkpoint(session)
    if report.findings:
        for problem in report.findings:
            click.echo(f"TAMPERED {problem}", err=True)
        raise SystemExit(1)
    click.echo(f"Ledger intact: {report.events} event(s), every chain and the last checkpoint "
               f"agree; {report.rows} identity record(s) match their {report.seals} seal(s); "
               f"{report.signatures} signature(s) match what they sign.")
    for why, count in report.unchecked.items():
        click.echo(f"Not re-checked: {count} signature(s): {why}.")
    if head is not None:
        click.echo(f"The exported head of {head['at']} is in the history, unchanged.")
    if latest is None:
        click.echo("No signed checkpoint yet: run flask coi ledger checkpoint (regularly).")


@ledger_cli.command("checkpoint")
def ledger_checkpoint() -> None:
    """Sign the current head of every case's chain and of the identity chain (run it
    regularly, e.g. hourly, and export the head now and then: flask coi ledger head)."""
    with session_scope(_engine()) as session:
        row = ledger.checkpoint(session=session, now=current_app.extensions["coi.clock"].now(),
                                signer=current_app.extensions["coi.signer"])
        heads = len(json.loads(row.heads))
    click.echo(f"Checkpoint signed over {heads} chain head(s) and identity seal {row.seal_seq}.")


@ledger_cli.command("head")
def ledger_head() -> None:
    """Print the latest signed checkpoint as JSON, to keep outside the system (another party,
    QA's records). Later, `flask coi ledger verify --head FILE` proves the history it saw was
    not rewritten since, even by someone holding the database and the signing key."""
    with snapshot(_engine()) as session:
        document = ledger.export_head(session=session)
    if document is None:
        raise click.ClickException("No checkpoint signs the identity chain yet: run "
                                   "flask coi ledger checkpoint first.")
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@cli.command("import-logger")
@click.argument("shipment_id", type=int)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--user", "username", required=True, help="Who imports it (recorded as the uploader).")
@click.option("--logger", "logger_serial", default=None, help="The logger, if the shipment has several.")
@click.option("--zone", default=None,
              help="The logger's time zone (IANA name, e.g. Europe/Berlin): files that state none are "
                   "read in it, and it is kept for the logger (audited). Default: the logger's zone.")
@click.option("--mapping", "mapping_text", default=None,
              help='A column mapping, as JSON or a JSON file: {"time": "Date Time", "value": "Temp", '
                   '"unit": "C", "order": "DMY"} (see python -m coldchain inspect --help).')
@click.option("--save-format", "format_name", default=None,
              help="Save the mapping under this name for every file of the same layout.")
def import_logger(shipment_id: int, path: str, username: str, logger_serial: str | None,
                  zone: str | None, mapping_text: str | None, format_name: str | None) -> None:
    """Import a logger file for a shipment (bulk back-loading), with a progress bar. The file
    is stored verbatim and evaluated like an upload; the same file again changes nothing."""
    mapping = _mapping_option(mapping_text)
    clock = current_app.extensions["coi.clock"]
    limit = int(current_app.config["LOGGER_UPLOAD_MAX_BYTES"])
    size = os.path.getsize(path)
    if size > limit:  # refused before it is read: nothing is written, as a web upload's 413
        raise click.ClickException(
            f"{os.path.basename(path)} is {size:,} bytes; the logger file limit "
            f"(LOGGER_UPLOAD_MAX_BYTES) is {size_text(limit)}. Nothing was stored.")
    with session_scope(_engine()) as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None or not user.active:
            raise click.ClickException(f"No active user {username!r}.")
        me = users.actor_for(session=session, user=user)
        with open(path, "rb") as stream, click.progressbar(length=0, label="Readings stored",
                                                           show_pos=True) as bar:
            def progress(count: int) -> None:
                bar.update(count - bar.pos)

            try:
                stored = intake.store(session=session, now=clock.now(), actor=me,
                                       shipment_id=shipment_id, stream=stream,
                                       filename=os.path.basename(path), via="cli",
                                       logger_serial=logger_serial, progress=progress, zone=zone,
                                       max_bytes=limit, mapping=mapping, format_name=format_name)
            except DomainError as error:
                session.rollback()
                if isinstance(error, intake.LoggerFileRefused):
                    rawfiles.record_refusal(session=session, now=clock.now(), actor=me,
                                           shipment_id=shipment_id, filename=os.path.basename(path),
                                           stream=stream, reason=error.message)
                    session.commit()
                raise click.ClickException(error.message) from None
        session.commit()
    click.echo(handlers.stored_message(stored, shipment_id))
    if not stored.changed:
        return
    if stored.created:
        click.echo(f"File {stored.file.id}, SHA-256 {stored.file.sha256}.")
    skipped, skipped_count, notes = intake.kept_rows(stored.result)
    if skipped_count:
        click.echo(f"Skipped {skipped_count:,} row(s) that are not readings"
                   + (f" (the first {len(skipped)}):" if len(skipped) < skipped_count else ":"))
        for row in skipped:
            click.echo(f"  {row}")
    for note in notes:
        click.echo(f"Note: {note}")
    for alarm in stored.alarms:
        click.echo(f"ALARM {alarm.severity}: {alarm.summary}")


def _mapping_option(text: str | None) -> ColumnMapping | None:
    """--mapping: JSON, or the path of a JSON file (as `python -m coldchain inspect` takes it)."""
    if text is None:
        return None
    try:
        return read_mapping(text)
    except BadMapping as error:
        raise click.ClickException(f"The column mapping cannot be used: {error}.") from None


def _engine():  # type: ignore[no-untyped-def]
    return current_app.extensions["coi.engine"]


@cli.command("scheduler")
@click.option("--once", is_flag=True, help="Run every job once and exit (cron, or a check).")
def scheduler(once: bool) -> None:
    """Run the scheduler process: deadline sweeps and escalation every
    COI_SWEEP_INTERVAL_SECONDS, alarm notifications every COI_DELIVERY_INTERVAL_SECONDS.
    Run one per installation, beside the web workers (never inside them); a second one at
    the same time (a failover) raises nothing twice."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    from coi import jobs
    from coi.jobs.recording import run_recorded

    engine, clock = _engine(), current_app.extensions["coi.clock"]
    settings = current_app.extensions["coi.alerting"]
    kept = timedelta(days=int(current_app.config["SCHEDULER_RUNS_KEPT_DAYS"]))
    sweeps, telling = jobs.deadline_jobs(settings, runs_kept=kept), jobs.notification_jobs(settings)
    if once:
        found = {**run_recorded(engine, clock, "sweeps", sweeps),
                 **run_recorded(engine, clock, "notifications", telling)}
        click.echo("; ".join(f"{name} {count}" for name, count in found.items()))
        return
    sweep_every = int(current_app.config["SWEEP_INTERVAL_SECONDS"])
    tell_every = int(current_app.config["DELIVERY_INTERVAL_SECONDS"])
    if sweep_every < 1 or tell_every < 1:
        raise click.ClickException("The intervals must be at least one second.")
    # A thread each for the sweeps and for telling people, so a slow mail server never holds
    # up a deadline; each job's runs never overlap (max_instances=1), and on SQLite their
    # writing transactions queue for the one write lock.
    runner = BlockingScheduler(timezone="UTC", executors={"default": ThreadPoolExecutor(1),
                                                          "telling": ThreadPoolExecutor(1)})
    # One run at a time per job; runs missed while one was slow are merged into one.
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None,
              "next_run_time": clock.now()}
    # Each run is recorded (coi.jobs.recording): readiness and a banner see when it stops.
    runner.add_job(run_recorded, IntervalTrigger(seconds=sweep_every),
                   args=(engine, clock, "sweeps", sweeps), id="sweeps", **common)
    runner.add_job(run_recorded, IntervalTrigger(seconds=tell_every),
                   args=(engine, clock, "notifications", telling), id="telling", executor="telling",
                   **common)
    signal.signal(signal.SIGTERM, lambda *_: runner.shutdown(wait=False))
    click.echo(f"Scheduler started: sweeps every {sweep_every} s, notifications every {tell_every} s "
               "(Ctrl-C to stop).")
    try:
        runner.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    click.echo("Scheduler stopped.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    migrate.upgrade(_engine())
    click.echo(f"Database at migration {migrate.current_revision(_engine())}.")


@cli.command("init")
def init() -> None:
    """Migrate, and on a first start in development mode load the demo data set."""
    migrate.upgrade(_engine())
    if current_app.config["MODE"] != "development":
        click.echo("Database migrated. (Demo data is loaded in development mode only.)")
        return
    with session_scope(_engine()) as session:
        if demo.is_loaded(session):
            click.echo("Database migrated; demo data already loaded.")
            logins = [(u, demo.PASSWORD, shows) for u, _n, _g, shows in demo.PEOPLE]
        else:
            logins = demo.load(session=session, now=current_app.extensions["coi.clock"].now(),
                               profiles=current_app.extensions["coi.profiles"],
                               cipher=current_app.extensions["coi.phi"],
                               signer=current_app.extensions["coi.signer"],
                               alerting_settings=current_app.extensions["coi.alerting"])
            click.echo("Database migrated; demo data loaded.")
    _print_logins(logins)


@cli.command("demo")
def load_demo() -> None:
    """Load the demo data set into an empty database."""
    with session_scope(_engine()) as session:
        if demo.is_loaded(session):
            raise click.ClickException("The database already has sites; demo data not loaded.")
        logins = demo.load(session=session, now=current_app.extensions["coi.clock"].now(),
                           profiles=current_app.extensions["coi.profiles"],
                           cipher=current_app.extensions["coi.phi"],
                           signer=current_app.extensions["coi.signer"],
                           alerting_settings=current_app.extensions["coi.alerting"])
    _print_logins(logins)


@phi_cli.command("rotate")
def rotate() -> None:
    """Re-encrypt every patient record under the first key in COI_PHI_KEYS and recompute the
    MRN index under COI_PHI_INDEX_KEY. Afterwards an old key can leave COI_PHI_KEYS (keep it
    at the end of the list while audit entries written under it must stay readable)."""
    cipher: PhiCipher = current_app.extensions["coi.phi"]
    count = 0
    with session_scope(_engine()) as session:
        for patient in session.exec(select(Patient).with_for_update()):
            patient.phi = cipher.rotate(patient.phi)
            patient.mrn_index = cipher.mrn_index(cipher.decrypt(patient.phi).mrn)
            session.add(patient)
            count += 1
    click.echo(f"Re-encrypted {count} patient record(s) under the newest key.")


def _print_logins(logins: list[tuple[str, str, str]]) -> None:
    if logins:
        click.echo(f"\nDemo logins (password for all: {logins[0][1]}):")
    for username, _password, shows in logins:
        click.echo(f"  {username:<15} {shows}")
    click.echo(f"\nOpen {config.local_url()} and log in.\n")
