"""Configuration names: the installation's signing key was called LABEL_SIGNING_KEY while
labels were its only use; an installation upgraded without renaming it keeps its key. And
what production refuses: a session key that can be guessed, a verify address over http."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from coi import config
from coi.app import create_app
from coi.config import ConfigError

OLD_KEY = base64.urlsafe_b64encode(b"o" * 32).decode()
NEW_KEY = base64.urlsafe_b64encode(b"n" * 32).decode()
SESSION_KEY = "tests-only-session-key-0123456789-abcdefghij"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COI_MODE", "COI_SECRET_KEY", "COI_PHI_KEYS", "COI_PHI_INDEX_KEY",
                 "COI_INSTALLATION_SIGNING_KEY", "COI_LABEL_SIGNING_KEY", "COI_LABEL_VERIFY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def production(**overrides: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {"MODE": "production", "SECRET_KEY": SESSION_KEY, "PHI_KEYS": Fernet.generate_key().decode(),
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


# ---------------------------------------------------------------- what production refuses

@pytest.mark.parametrize(("key", "says"), [
    ("s" * 40, "not random"),  # one character repeated
    ("abc" * 14, "not random"),  # a short piece repeated
    ("password" * 5, "not random"),
    ("0123456789" * 4, "not random"),  # ten different characters, still a pattern
    ("aaaabbbbccccddddeeeeffffgggghhhh", "not random"),  # eight different characters
    ("Xk3-pQ9_zL2", "is 11 bytes long; it must be at least 32"),
    ("G4CSO9nkgMAjnnyZ7WE-kw", "is 22 bytes long"),  # random, but secrets.token_urlsafe(16)
])
def test_production_refuses_a_session_key_that_can_be_guessed(clean_environment, tmp_path, key, says):
    with pytest.raises(ConfigError) as refused:
        config.load(str(tmp_path), production(SECRET_KEY=key, INSTALLATION_SIGNING_KEY=NEW_KEY))

    message = str(refused.value)
    assert "COI_SECRET_KEY" in message and says in message
    assert 'python -c "import secrets; print(secrets.token_urlsafe(48))"' in message
    assert key not in message  # a refused key is still a secret: it is not written to the log


# Keys as these tools made them once (fixed, so that the test is the same on every run).
@pytest.mark.parametrize("key", [
    pytest.param("zDV-cZd75CviZB08hp6OIw10PIwgP1pDTgAP-kaqUp0XnvtUtHJaoDv5cKaqoMwY", id="token_urlsafe(48)"),
    pytest.param("DiG3w4NpxFZt0e5cSezP9cJ-LyER7bHIynL1FfbPkPQ", id="token_urlsafe(32)"),
    pytest.param("37668f1cb202e3066291c78c250f0017ff79640fbeb1b0746eea38e9b7627d03", id="token_hex(32)"),
    pytest.param("0cc953b9b33ca9e2d0f12ca231a15ca7", id="token_hex(16)"),
    pytest.param("xuCrmbeXBw/BwV32RAMhnh7QYNWh2NNlGKptEJVPrkQ=", id="openssl rand -base64 32"),
    pytest.param(bytes(range(7, 255, 6)), id="bytes"),
])
def test_production_accepts_a_random_session_key_as_the_usual_tools_make_it(clean_environment, tmp_path, key):
    loaded = config.load(str(tmp_path), production(SECRET_KEY=key, INSTALLATION_SIGNING_KEY=NEW_KEY))

    assert loaded["SECRET_KEY"] == key


@pytest.mark.parametrize("url", ["http://coi.example.org", "HTTP://coi.example.org", "coi.example.org",
                                 "https://", "ftp://coi.example.org"])
def test_production_refuses_a_verify_address_that_is_not_https(clean_environment, tmp_path, url):
    with pytest.raises(ConfigError) as refused:
        config.load(str(tmp_path), production(LABEL_VERIFY_BASE_URL=url, INSTALLATION_SIGNING_KEY=NEW_KEY))

    message = str(refused.value)
    assert "COI_LABEL_VERIFY_BASE_URL" in message and "https://" in message
    assert "e.g. https://coi.example.org" in message


def test_a_good_production_configuration_starts_and_serves_the_login_page(clean_environment, tmp_path):
    app = create_app(production(INSTALLATION_SIGNING_KEY=NEW_KEY,
                                DATABASE_URL=f"sqlite:///{tmp_path / 'coi.sqlite3'}"))
    try:
        assert app.config["MODE"] == "production" and app.config["SECRET_KEY"] == SESSION_KEY
        assert app.test_client().get("/login").status_code == 200
    finally:
        app.extensions["coi.engine"].dispose()


def test_development_and_testing_take_any_session_key_and_a_local_http_address(clean_environment, tmp_path):
    for mode in ("development", "testing"):
        loaded = config.load(str(tmp_path), production(
            MODE=mode, SECRET_KEY="dev", INSTALLATION_SIGNING_KEY=NEW_KEY,
            LABEL_VERIFY_BASE_URL="http://127.0.0.1:5000"))

        assert (loaded["SECRET_KEY"], loaded["LABEL_VERIFY_BASE_URL"]) == ("dev", "http://127.0.0.1:5000")
