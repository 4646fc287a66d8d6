"""Logs: JSON lines naming the request, the user and the endpoint, and never a patient.

The demo data set is loaded through `flask coi init` and then used through the pages as
people use it, with everything the configured handler writes captured; no line may hold a
demo patient's name, birth date or medical record number, nor those of a patient enrolled
during the test."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coi import demo, logs
from coi.app import create_app
from coi.core.phi import PatientIdentity
from coi.models import Case
from tests.helpers import CSRF, login

NEW_PATIENT = PatientIdentity("Zebulon Quaritch", date(1973, 5, 26), "BOS-987654")
PATIENTS = [identity for _site, identity, _when, _story in demo.PATIENTS] + [NEW_PATIENT]


def date_spellings(day: date) -> list[str]:
    """A birth date as the pages show it (ISO) and as people and programs write dates."""
    return [day.isoformat(), day.strftime("%Y%m%d"), day.strftime("%d.%m.%Y"), day.strftime("%m/%d/%Y"),
            day.strftime("%d/%m/%Y"), day.strftime("%d %b %Y"), day.strftime("%b %d, %Y"),
            day.strftime("%d %B %Y"), f"{day.year}-{day.month}-{day.day}"]


def phi_patterns(patients: list[PatientIdentity]) -> list[re.Pattern[str]]:
    found = []
    for patient in patients:
        words = [part for part in re.split(r"\s+", patient.name) if part]
        texts = words + date_spellings(patient.birth_date) + [patient.mrn, patient.mrn.replace("-", "")]
        found += [re.compile(rf"(?<![A-Za-z0-9]){re.escape(text)}(?![A-Za-z0-9])", re.IGNORECASE)
                  for text in texts]
    return found


def phi_in(lines: list[str], patients: list[PatientIdentity] = PATIENTS) -> list[str]:
    """Each line that holds any of the patients' name parts, birth dates or MRNs, with what."""
    patterns = phi_patterns(patients)
    return [f"{pattern.pattern}: {line}" for line in lines for pattern in patterns if pattern.search(line)]


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """The suite logs warnings only (tests/conftest.py); these tests read every line."""
    return app_config | {"LOG_LEVEL": "INFO"}


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the configured handler writes, wherever sys.stderr points at the time (the CLI
    runner swaps it)."""
    buffer = io.StringIO()
    monkeypatch.setattr(logs.StderrHandler, "stream", property(lambda _self: buffer, lambda _s, _v: None))
    return buffer


@pytest.fixture
def demo_app(app_config: dict[str, Any]) -> Iterator[Flask]:
    """The development app `make run` starts, on this test's (empty, migrated) database."""
    application = create_app(app_config | {"MODE": "development", "LOG_FORMAT": "json"})
    yield application
    application.extensions["coi.engine"].dispose()


def lines_of(buffer: io.StringIO) -> list[str]:
    return [line for line in buffer.getvalue().splitlines() if line.strip()]


def token_of(page: Any) -> str:
    found = CSRF.search(page.get_data(as_text=True))
    assert found, "no CSRF token on the page"
    return found.group(1)


def use_the_demo(app: Flask, client: FlaskClient, bag: str) -> list[Any]:
    """What people do on a working day, every response kept."""
    answers = []
    answers.append(login(client, "nurse.boston", demo.PASSWORD))
    cases = client.get("/cases")
    answers.append(cases)
    from sqlmodel import Session, select

    from coi.models import coi_of

    with Session(app.extensions["coi.engine"]) as session:
        cois = [coi_of(case).text for case in session.exec(select(Case)).all()]
    for coi in cois:  # each case page, with its patient's name, birth date and MRN for Boston
        answers.append(client.get(f"/cases/{coi}"))
    form = client.get("/cases/new")
    answers.append(form)
    enrolled = client.post("/cases/new", data={
        "csrf_token": token_of(form), "site": "BOS", "product": "CARTX", "manufacturing_site": "MFG",
        "name": NEW_PATIENT.name, "birth_date": NEW_PATIENT.birth_date.isoformat(), "mrn": NEW_PATIENT.mrn})
    answers.append(enrolled)
    assert enrolled.status_code == 302, enrolled.get_data(as_text=True)[:2000]
    answers.append(client.get(enrolled.headers["Location"]))  # the new case page, showing the patient
    # An error page that shows the form again (the birth date cannot be read), with the name.
    refused = client.post("/cases/new", data={
        "csrf_token": token_of(form), "site": "BOS", "product": "CARTX", "manufacturing_site": "MFG",
        "name": NEW_PATIENT.name, "birth_date": "26/05/1973", "mrn": "BOS-555000"})
    assert refused.status_code == 422 and NEW_PATIENT.name in refused.get_data(as_text=True)
    answers.append(refused)
    # Patient data in a query string: refused, and the query never logged.
    answers.append(client.get(f"/cases?state={demo.PATIENTS[0][1].name}"))
    answers.append(client.get(f"/no-such-page?mrn={demo.PATIENTS[0][1].mrn}"))
    assert answers[-1].status_code == 404
    answers.append(client.get("/admin/users"))  # not for site staff
    client.post("/logout", data={"csrf_token": token_of(client.get("/cases"))})
    answers.append(login(client, "courier", demo.PASSWORD))
    csrf = client.get("/scan/token").get_json()["csrf"]
    scan = {"scans": [{"text": bag, "method": "typed"}], "partial": True,
            "idempotency_key": str(uuid.uuid4()), "device_at": datetime.now(UTC).isoformat()}
    judged = client.post("/scan/judge", json=scan, headers={"X-CSRFToken": csrf})
    answers.append(judged)
    assert judged.status_code == 200, judged.get_data(as_text=True)
    recorded = client.post("/scan/judge", headers={"X-CSRFToken": csrf}, json=scan | {
        "partial": False, "step": judged.get_json()["step"], "password": demo.PASSWORD,
        "idempotency_key": str(uuid.uuid4())})
    assert recorded.status_code == 200 and recorded.get_json()["recorded"], recorded.get_data(as_text=True)
    answers.append(recorded)
    answers.append(client.post("/scan/judge", headers={"X-CSRFToken": csrf}, json=scan | {
        "scans": [{"text": NEW_PATIENT.mrn, "method": "typed"}], "idempotency_key": str(uuid.uuid4())}))
    return answers


def test_no_log_line_names_a_patient_from_the_demo_load_to_a_day_of_use(demo_app, written):
    loaded = demo_app.test_cli_runner().invoke(args=["coi", "init"])
    assert loaded.exit_code == 0 and "demo data loaded" in loaded.output, loaded.output
    bag = re.search(r"\(bag ([^)]+)\)", loaded.output)
    assert bag, loaded.output
    loading = lines_of(written)
    assert loading, "the demo load logged nothing: the capture does not see the handler"
    written.truncate(0)
    written.seek(0)

    answers = use_the_demo(demo_app, demo_app.test_client(), bag.group(1))

    using = lines_of(written)
    assert phi_in(loading + using) == []
    records = [json.loads(line) for line in loading + using]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    assert all(record["time"].endswith("+00:00") for record in records)
    assert all("request_id" in record and "endpoint" in record for record in records[len(loading):])
    access = {record["request_id"]: record for record in records if record["logger"] == "coi.access"}
    for answer in answers:  # one access line per request, under the id the answer carries
        line = access[answer.headers["X-Request-ID"]]
        assert line["status"] == answer.status_code and "?" not in line["path"]
    endpoints = {record["endpoint"] for record in access.values()}
    assert {"cases.show", "cases.enrol", "scan.judge", logs.UNMATCHED} <= endpoints
    assert any(r.get("user") == "courier" and r.get("sites") == ["DEP"] for r in access.values())
    # A scan's path names no case: its line says which case, and at which site, it recorded.
    recorded = answers[-2].get_json()
    scanned = access[answers[-2].headers["X-Request-ID"]]
    assert recorded["case"] and recorded["site"]
    assert (scanned["site"], scanned["case"]) == (recorded["site"], recorded["case"])


def test_the_check_finds_a_patient_named_in_a_log_line_by_mistake(app, written):
    """The check above can fail: a line naming a patient, or a birth date, is caught."""
    harriet = demo.PATIENTS[0][1]
    with app.test_request_context("/cases"):
        logging.getLogger("coi.mistake").warning("looked up %s", harriet.name.split()[1])
        logging.getLogger("coi.mistake").warning("born %s", harriet.birth_date.strftime("%d.%m.%Y"))
    logging.getLogger("coi.mistake").warning("record %s", NEW_PATIENT.mrn)
    found = phi_in(lines_of(written))
    assert len(found) == 3, found
    assert phi_in(['{"message": "case 4 at BOS, unit A9998 26 0001"}']) == []


def test_an_incoming_request_id_is_kept_when_plain_and_replaced_otherwise(client, written):
    kept = client.get("/login", headers={"X-Request-ID": "edge-7f3a.1"})
    assert kept.headers["X-Request-ID"] == "edge-7f3a.1"
    replaced = client.get("/login", headers={"X-Request-ID": "<b>not plain</b>"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])
    ids = [json.loads(line).get("request_id") for line in lines_of(written)]
    assert "edge-7f3a.1" in ids and replaced.headers["X-Request-ID"] in ids


def test_text_format_is_for_a_developer_terminal(app_config, written):
    application = create_app(app_config | {"LOG_FORMAT": "text"})
    try:
        application.test_client().get("/login")
    finally:
        application.extensions["coi.engine"].dispose()
    line = lines_of(written)[-1]
    assert " INFO coi.access: GET /login 200 [request_id=" in line and "endpoint=auth.login" in line


def test_an_unknown_log_format_refuses_to_start(app_config):
    from coi.config import ConfigError

    with pytest.raises(ConfigError, match="COI_LOG_FORMAT"):
        create_app(app_config | {"LOG_FORMAT": "xml"})


def test_the_development_server_logs_its_address_but_not_its_own_request_lines(app, written):
    from werkzeug._internal import _log

    _log("info", ' * Running on http://127.0.0.1:5000')
    request_line = f"GET /cases?mrn={NEW_PATIENT.mrn} HTTP/1.1"
    _log("info", '127.0.0.1 - - [05/Dec/2026 10:00:00] "%s" %s %s', request_line, 200, "-")
    messages = [json.loads(line)["message"] for line in lines_of(written)]
    assert messages == [" * Running on http://127.0.0.1:5000"]


def test_a_readiness_probe_writes_its_access_line_and_nothing_else(client, written):
    """Probes come every few seconds: alembic's "Context impl" lines on each would bury the
    log (an upgrade still writes them)."""
    assert client.get("/healthz/ready").status_code == 200
    assert [json.loads(line)["logger"] for line in lines_of(written)] == ["coi.access"]


def test_the_scheduler_does_not_log_every_job_run(app, written):
    """APScheduler's "Running job ... executed successfully" lines, two per run every few
    seconds, are left out; the heartbeat table records the runs."""
    for name in ("apscheduler.executors.default", "apscheduler.executors.telling"):
        logging.getLogger(name).info("Running job %s", "sweeps")
    logging.getLogger("apscheduler.scheduler").info("Scheduler started")
    assert [json.loads(line)["message"] for line in lines_of(written)] == ["Scheduler started"]
