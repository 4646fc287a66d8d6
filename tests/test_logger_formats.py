"""A logger file the readers cannot place is mapped by the uploader, and the mapping is kept as
a named format for files of that layout: the web upload box (the refusal lists the file's
columns; the preview re-reads with the mapping; the commit saves it), the API's `mapping` and
`format_name`, and `flask coi import-logger --mapping --save-format`. The next file of the
same layout reads by itself; saving is audited; one format at most is in use per layout."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from sqlmodel import col, func, select

from coi.models import AuditEntry, LoggerFile, LoggerFormat, LoggerReading, Shipment
from tests.helpers import (
    CSRF,
    api_token,
    assert_as_documented,
    bearer,
    login,
    make_case,
    open_for,
    probes,
)

JSON = {"Accept": "application/json"}
MAPPING = {"date": 1, "time": 2, "value": "Probe A [°C]", "unit": "C", "order": "DMY"}


@pytest.fixture
def shipment(app, session, world, clock) -> Shipment:
    shipment = open_for(session, world, clock, make_case(app, session, world, clock))
    clock.advance(hours=2)
    return shipment


def count(session, model) -> int:
    session.rollback()
    return session.exec(select(func.count()).select_from(model)).one()


def web_token(client, shipment: Shipment) -> str:
    login(client, "courier")
    return CSRF.search(client.get(f"/shipments/{shipment.id}").get_data(as_text=True)).group(1)


def form(token: str, data: bytes, name: str, **fields: object) -> dict[str, object]:
    return {"csrf_token": token, "file": (io.BytesIO(data), name), **fields}


def mapped_fields(mapping: dict[str, object]) -> dict[str, str]:
    return {f"map_{key}": str(value) for key, value in mapping.items()}


def test_the_upload_box_maps_a_file_saves_the_format_and_the_next_file_reads_by_itself(
        client, session, shipment):
    token = web_token(client, shipment)
    data = probes(shipment.opened_at, [5.1, 5.3, 5.2])
    url = f"/shipments/{shipment.id}/logger-files"
    # Refused, with the columns to map and the first rows.
    refused = client.post(url + "/preview", headers=JSON, data=form(token, data, "probes.csv"))
    assert refused.status_code == 422
    problem = refused.get_json()
    assert "several columns could be the temperature" in problem["detail"]
    assert problem["layout"]["columns"] == ["Date", "Time", "Probe A [°C]", "Probe B [°C]"]
    assert problem["layout"]["sample"][0][2] == "5,1"
    # The preview re-read through the mapping.
    preview = client.post(url + "/preview", headers=JSON,
                          data=form(token, data, "probes.csv", **mapped_fields(MAPPING))).get_json()
    assert (preview["count"], preview["min_celsius"], preview["max_celsius"]) == (3, 5.1, 5.3)
    assert preview["mapping"] == MAPPING and preview["saved_format"] is None
    # Stored through it, and saved as a format.
    stored = client.post(url, headers=JSON, data=form(token, data, "probes.csv", sha256=preview["sha256"],
                                                      format_name="Vendor X two-probe",
                                                      **mapped_fields(MAPPING)))
    assert stored.status_code == 201, stored.get_json()
    assert stored.get_json()["file"]["saved_format"] == "Vendor X two-probe"
    session.rollback()
    saved = session.exec(select(LoggerFormat)).one()
    assert json.loads(saved.mapping) == MAPPING and saved.retired_at is None
    audited = session.exec(select(AuditEntry).where(AuditEntry.entity == "logger_format")).all()
    assert {e.field: e.new_value for e in audited}["name"] == "Vendor X two-probe"
    assert all(e.actor_name.endswith("(courier)") for e in audited)
    # The next export of that device (another preamble, other readings) reads by itself.
    later = probes(shipment.opened_at + timedelta(minutes=20), [4.0, 4.2], device="unit 7 (service)")
    preview = client.post(url + "/preview", headers=JSON, data=form(token, later, "probes-2.csv")).get_json()
    assert preview["saved_format"] == "Vendor X two-probe" and preview["count"] == 2
    assert client.post(url, headers=JSON, data=form(token, later, "probes-2.csv")).status_code == 201
    session.rollback()
    files = session.exec(select(LoggerFile).order_by(col(LoggerFile.id))).all()
    assert [json.loads(f.report)["saved_format"] for f in files] == ["Vendor X two-probe"] * 2
    assert count(session, LoggerReading) == 5


def test_a_mapping_that_does_not_fit_the_file_is_refused_and_stores_nothing(client, session, shipment):
    token = web_token(client, shipment)
    data = probes(shipment.opened_at, [5.1, 5.3])
    url = f"/shipments/{shipment.id}/logger-files"
    for fields, message in [
        ({"map_time": "2", "map_value": "Probe Z"}, "the value column 'Probe Z' is not in the file's header"),
        ({"map_time": "2", "map_value": "3", "map_unit": "K"}, "unit must be C or F"),
        ({"map_value": "3"}, "say which column holds the time"),
    ]:
        answer = client.post(url, headers=JSON, data=form(token, data, "probes.csv", **fields))
        assert answer.status_code == 422 and message in json.dumps(answer.get_json())
    answer = client.post(url, headers=JSON, data=form(token, data, "probes.csv", format_name="Nameless"))
    assert answer.status_code == 422 and "Give the column mapping" in answer.get_json()["detail"]
    assert count(session, LoggerFile) == 0 and count(session, LoggerFormat) == 0


def test_the_api_takes_a_mapping_and_a_format_name_as_documented(client, session, world, clock, shipment):
    token = api_token(session, clock, world, "courier")
    document = client.get("/api/v1/openapi.json").get_json()
    path = "/shipments/{shipment_id}/logger-files"
    url = f"/api/v1/shipments/{shipment.id}/logger-files"
    data = probes(shipment.opened_at, [5.1, 5.3])
    refused = client.post(f"{url}?filename=p.csv", data=data, headers=bearer(token))
    assert refused.status_code == 422 and refused.get_json()["layout"]["columns"][2] == "Probe A [°C]"
    assert_as_documented(document, path, "post", refused)
    bad = client.post(f"{url}?filename=p.csv&mapping={{\"time\": 2", data=data, headers=bearer(token))
    assert bad.status_code == 422 and "not a JSON object" in bad.get_json()["detail"]
    stored = client.post(f"{url}?filename=p.csv&format_name=Two+probes&mapping=" + json.dumps(MAPPING),
                         data=data, headers=bearer(token))
    assert stored.status_code == 201, stored.get_json()
    assert_as_documented(document, path, "post", stored)
    assert stored.get_json()["file"]["mapping"] == MAPPING
    later = probes(shipment.opened_at + timedelta(minutes=20), [4.4])
    again = client.post(f"{url}?filename=q.csv", data=later, headers=bearer(token))
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["file"]["saved_format"] == "Two probes"


def test_a_new_mapping_for_a_layout_retires_the_one_in_use(client, session, world, clock, shipment):
    token = api_token(session, clock, world, "courier")
    url = f"/api/v1/shipments/{shipment.id}/logger-files"
    first = probes(shipment.opened_at, [5.1])
    second = probes(shipment.opened_at + timedelta(minutes=10), [5.2])
    assert client.post(f"{url}?format_name=A&mapping=" + json.dumps(MAPPING), data=first,
                       headers=bearer(token)).status_code == 201
    probe_b = {**MAPPING, "value": "Probe B [°C]"}
    assert client.post(f"{url}?format_name=B&mapping=" + json.dumps(probe_b), data=second,
                       headers=bearer(token)).status_code == 201
    session.rollback()
    rows = {row.name: row for row in session.exec(select(LoggerFormat))}
    assert rows["A"].retired_at is not None and rows["B"].retired_at is None
    taken = client.post(f"{url}?format_name=B&mapping=" + json.dumps(MAPPING),
                        data=probes(shipment.opened_at + timedelta(minutes=30), [5.0]), headers=bearer(token))
    assert taken.status_code == 409 and "named 'B' exists already" in taken.get_json()["detail"]


def test_import_logger_takes_a_mapping_and_saves_a_format(app, session, shipment, tmp_path):
    path = tmp_path / "probes.csv"
    path.write_bytes(probes(shipment.opened_at, [5.1, 5.3]))
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["coi", "import-logger", str(shipment.id), str(path), "--user", "courier",
                                  "--mapping", '{"time": 2}'])
    assert refused.exit_code != 0 and "say which column holds the time" in refused.output
    result = runner.invoke(args=["coi", "import-logger", str(shipment.id), str(path), "--user", "courier",
                                 "--mapping", str(mapping), "--save-format", "Two probes (CLI)"])
    assert result.exit_code == 0, result.output
    assert "Stored 2 readings" in result.output
    session.rollback()
    assert session.exec(select(LoggerFormat.name)).one() == "Two probes (CLI)"
