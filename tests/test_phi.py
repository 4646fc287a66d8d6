"""Patient data at rest: encrypted, rotatable, and never where it should not be."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlmodel import select

from coi.app import create_app
from coi.config import ConfigError
from coi.core.phi import PatientIdentity, PhiCipher, PhiKeyError
from coi.models import AuditEntry, Patient
from coi.services import enrolment
from tests.helpers import INSTALLATION_KEY, PASSWORD

NAME = "Harriet Quintessa Vance"
MRN = "MRN-77-31415"


def enrol(app, world, session, clock, mrn: str = MRN):
    return enrolment.enrol(session=session, now=clock.now(), actor=world.actor("staff"),
                           cipher=app.extensions["coi.phi"], site_code="BOS",
                           product_code="CARTX", manufacturing_site_code="MFG",
                           identity=PatientIdentity(NAME, date(1961, 3, 14), mrn))


def test_raw_database_rows_hold_no_plaintext_patient_data(app, world, session, clock, engine):
    enrol(app, world, session, clock)
    session.commit()
    with engine.connect() as connection:
        dump = " ".join(str(row) for table in ("patient", "therapy_case", "audit_entry", "unit")
                        for row in connection.execute(text(f"SELECT * FROM {table}")))  # noqa: S608
    for secret in (NAME, "Vance", MRN, "1961-03-14"):
        assert secret not in dump
    patient = session.exec(select(Patient)).one()
    assert app.extensions["coi.phi"].decrypt(patient.phi).name == NAME


def test_key_rotation_keeps_patients_readable_after_the_old_key_is_dropped(
        app, app_config, world, session, clock, engine):
    old_key = app_config["PHI_KEYS"][0]
    enrol(app, world, session, clock)
    session.commit()
    new_key = Fernet.generate_key().decode()
    rotating = create_app(app_config | {"PHI_KEYS": [new_key, old_key]})
    result = rotating.test_cli_runner().invoke(args=["coi", "phi", "rotate"])
    rotating.extensions["coi.engine"].dispose()
    assert "Re-encrypted 1 patient record(s)" in result.output, result.output
    stored = session.exec(select(Patient)).one().phi
    with pytest.raises(PhiKeyError):
        PhiCipher([old_key], app_config["PHI_INDEX_KEY"]).decrypt(stored)
    only_new = PhiCipher([new_key], app_config["PHI_INDEX_KEY"])
    assert only_new.decrypt(stored) == PatientIdentity(NAME, date(1961, 3, 14), MRN)


def test_mrn_index_is_keyed_and_ignores_case_and_spaces():
    key = Fernet.generate_key().decode()
    one = PhiCipher([key], "aW5kZXgta2V5LW51bWJlci1vbmUtMzItYnl0ZXMhIQ")
    other = PhiCipher([key], "aW5kZXgta2V5LW51bWJlci10d28tMzItYnl0ZXMhIQ")
    assert one.mrn_index(" mrn-1 ") == one.mrn_index("MRN-1")
    assert one.mrn_index("MRN-1") != other.mrn_index("MRN-1")
    assert "MRN-1" not in one.mrn_index("MRN-1")


def test_a_missing_key_in_production_stops_the_app_with_a_clear_message(monkeypatch, tmp_path):
    for name in ("COI_PHI_KEYS", "COI_PHI_INDEX_KEY", "COI_SECRET_KEY", "COI_MODE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as refused:
        create_app({"MODE": "production", "SECRET_KEY": "s" * 40,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    message = str(refused.value)
    assert "COI_PHI_KEYS" in message and "COI_PHI_INDEX_KEY" in message
    assert "COI_INSTALLATION_SIGNING_KEY" in message
    assert "production" in message and "Fernet.generate_key" in message


def test_production_needs_the_public_address_that_labels_link_to(tmp_path):
    with pytest.raises(ConfigError, match="COI_LABEL_VERIFY_BASE_URL"):
        create_app({"MODE": "production", "SECRET_KEY": "s" * 40,
                    "PHI_KEYS": Fernet.generate_key().decode(), "PHI_INDEX_KEY": "x" * 32,
                    "INSTALLATION_SIGNING_KEY": INSTALLATION_KEY,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})


def test_an_invalid_key_is_refused_by_number(tmp_path):
    with pytest.raises(ConfigError, match="PHI key number 2 is not a valid key"):
        create_app({"MODE": "production", "SECRET_KEY": "s" * 40,
                    "PHI_KEYS": f"{Fernet.generate_key().decode()},not-a-key",
                    "PHI_INDEX_KEY": "x" * 32, "INSTALLATION_SIGNING_KEY": INSTALLATION_KEY,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})


def test_development_mode_makes_its_keys_once_under_instance(tmp_path, monkeypatch):
    from coi import config

    for name in ("COI_PHI_KEYS", "COI_PHI_INDEX_KEY", "COI_SECRET_KEY", "COI_MODE"):
        monkeypatch.delenv(name, raising=False)
    first = config.load(str(tmp_path), {"MODE": "development"})
    secrets_file = tmp_path / "secrets.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    second = config.load(str(tmp_path), {"MODE": "development"})
    assert first["PHI_KEYS"] == second["PHI_KEYS"] and first["SECRET_KEY"] == second["SECRET_KEY"]
    assert first["DATABASE_URL"] == f"sqlite:///{tmp_path / 'coi.sqlite3'}"


def test_corrected_values_are_sealed_in_the_audit_trail(app, world, session, clock, client):
    from coi.models import coi_of
    from coi.services import patients

    case = enrol(app, world, session, clock)
    patients.correct(session=session, now=clock.now(), actor=world.actor("staff"),
                     cipher=app.extensions["coi.phi"], coi_text=coi_of(case).text,
                     name="Harriet Q. Vance-Miller", birth_date=None, mrn=None,
                     reason="name misspelt at enrolment", password=PASSWORD)
    session.commit()
    entry = session.exec(select(AuditEntry).where(AuditEntry.entity == "patient",
                                                 AuditEntry.field == "name")).one()
    assert entry.old_value.startswith("phi:") and NAME not in entry.old_value
    assert "Vance-Miller" not in entry.new_value
    assert app.extensions["coi.phi"].unseal(entry.new_value) == "Harriet Q. Vance-Miller"

