"""Configuration names: the installation's signing key was called LABEL_SIGNING_KEY while
labels were its only use; an installation upgraded without renaming it keeps its key."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from coi import config
from coi.config import ConfigError

OLD_KEY = base64.urlsafe_b64encode(b"o" * 32).decode()
NEW_KEY = base64.urlsafe_b64encode(b"n" * 32).decode()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COI_MODE", "COI_SECRET_KEY", "COI_PHI_KEYS", "COI_PHI_INDEX_KEY",
                 "COI_INSTALLATION_SIGNING_KEY", "COI_LABEL_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)


def production(**overrides: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {"MODE": "production", "SECRET_KEY": "s" * 40, "PHI_KEYS": Fernet.generate_key().decode(),
            "PHI_INDEX_KEY": "x" * 32, "LABEL_VERIFY_BASE_URL": "https://coi.example.org"} | overrides


def test_the_old_name_of_the_signing_key_still_signs_and_asks_to_be_renamed(
        clean_environment, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("COI_LABEL_SIGNING_KEY", OLD_KEY)

    with caplog.at_level(logging.WARNING, logger="coi.config"):
        loaded = config.load(str(tmp_path), production())

    assert loaded["INSTALLATION_SIGNING_KEY"] == OLD_KEY
    assert "LABEL_SIGNING_KEY" not in loaded
    assert "COI_LABEL_SIGNING_KEY is the old name of COI_INSTALLATION_SIGNING_KEY" in caplog.text


def test_both_names_with_different_keys_are_refused(clean_environment, monkeypatch, tmp_path):
    monkeypatch.setenv("COI_LABEL_SIGNING_KEY", OLD_KEY)

    with pytest.raises(ConfigError, match="both set, to different values"):
        config.load(str(tmp_path), production(INSTALLATION_SIGNING_KEY=NEW_KEY))


def test_the_new_name_alone_needs_no_warning(clean_environment, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="coi.config"):
        loaded = config.load(str(tmp_path), production(INSTALLATION_SIGNING_KEY=NEW_KEY))

    assert loaded["INSTALLATION_SIGNING_KEY"] == NEW_KEY
    assert caplog.text == ""


def test_a_development_instance_made_before_the_rename_keeps_its_signing_key(clean_environment, tmp_path):
    from cryptography.fernet import Fernet

    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"SECRET_KEY": "s" * 40, "PHI_KEYS": [Fernet.generate_key().decode()],
                                        "PHI_INDEX_KEY": "x" * 32, "LABEL_SIGNING_KEY": OLD_KEY}))

    loaded = config.load(str(tmp_path), {"MODE": "development"})

    assert loaded["INSTALLATION_SIGNING_KEY"] == OLD_KEY
