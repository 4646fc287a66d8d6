"""The production recipe in deploy/systemd: the units are valid for this machine's systemd
(`systemd-analyze verify`, offline, on copies whose /opt/coi paths point at this checkout
and the virtualenv running the tests), the commands they start exist and run, the web
server and the scheduler read the same settings and share their metrics directory, no unit
migrates, and no container file is shipped that could not be built here."""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
INSTALL = "/opt/coi"  # where the units expect the checkout, its .venv beside the code
BIN = Path(sys.executable).parent  # the virtualenv running the tests: gunicorn and flask


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values, in order]}} (keys may repeat: ExecStart)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def services() -> list[str]:
    return sorted(path.name for path in UNITS.glob("*.service"))


def here(text: str) -> str:
    """A unit's text with the install paths pointing at this checkout and virtualenv."""
    return text.replace(f"{INSTALL}/.venv/bin", str(BIN)).replace(INSTALL, str(ROOT))


def test_the_units_are_there() -> None:
    assert {"coi-web.service", "coi-scheduler.service", "coi-checkpoint.service",
            "coi-checkpoint.timer"} <= {path.name for path in UNITS.iterdir()}


def test_systemd_analyze_verifies_every_unit_without_a_warning(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (systemd's own tools)")
    names = sorted(path.name for path in UNITS.iterdir() if path.suffix in (".service", ".timer"))
    for name in names:
        (tmp_path / name).write_text(here((UNITS / name).read_text()))
    done = subprocess.run([analyze, "--man=no", "verify", *names], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    # Unknown keys and unparsable values are only warnings (exit status 0): none allowed.
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_every_unit_starts_from_the_install_dir_with_the_shared_settings() -> None:
    for name in services():
        service = unit(name)["Service"]
        assert service["EnvironmentFile"] == ["/etc/coi/coi.env"], name
        assert service["WorkingDirectory"] == [INSTALL], name
        assert service["User"] == ["coi"], name
        assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"], name
        assert service["PrivateTmp"] == ["yes"], name
        assert f"-{INSTALL}/instance" in service["ReadWritePaths"], name
        for command in service["ExecStart"]:
            assert command.startswith(f"{INSTALL}/.venv/bin/"), command


def test_web_and_scheduler_share_settings_and_the_metrics_directory_that_outlives_either() -> None:
    web, scheduler = unit("coi-web.service")["Service"], unit("coi-scheduler.service")["Service"]
    assert web["ExecStart"] == [f"{INSTALL}/.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app"]
    assert scheduler["ExecStart"] == [f"{INSTALL}/.venv/bin/flask --app wsgi coi scheduler"]
    for key in ("EnvironmentFile", "RuntimeDirectory", "RuntimeDirectoryPreserve", "User"):
        assert web[key] == scheduler[key], key
    assert web["RuntimeDirectoryPreserve"] == ["yes"]  # stopping one must not delete it under the other
    environment = (UNITS / "coi.env.example").read_text()
    assert "PROMETHEUS_MULTIPROC_DIR=/run/coi/metrics" in environment
    assert "coi/metrics" in web["RuntimeDirectory"][0].split()
    for name in ("coi-web.service", "coi-scheduler.service"):
        assert unit(name)["Service"]["Restart"] == ["on-failure"]


def test_no_unit_migrates_the_database() -> None:
    for name in services():
        text = (UNITS / name).read_text()
        commands = [line for line in text.splitlines() if line.startswith("Exec")]
        assert not any("db upgrade" in line or "coi init" in line for line in commands), name


def test_gunicorn_gets_longer_than_its_graceful_timeout_to_stop() -> None:
    web = unit("coi-web.service")["Service"]
    assert web["KillSignal"] == ["SIGTERM"]  # gunicorn's graceful shutdown
    config = ROOT / "gunicorn.conf.py"
    graceful = int(runpy.run_path(str(config)).get("graceful_timeout", 30)) if config.exists() else 30
    assert int(web["TimeoutStopSec"][0]) > graceful


@pytest.fixture
def command_env(run_config: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """The environment file's part a command needs to start, as the tests configure the app."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
           "COI_DATABASE_URL": f"sqlite:///{tmp_path / 'coi.sqlite3'}"}
    for key, value in run_config.items():
        env[f"COI_{key}"] = ",".join(value) if isinstance(value, list) else str(value)
    return env


@pytest.mark.parametrize("name", ["coi-scheduler.service", "coi-checkpoint.service",
                                  "coi-backup.service"])
def test_the_flask_commands_of_the_units_exist(name: str, command_env: dict[str, str]) -> None:
    for command in unit(name)["Service"]["ExecStart"]:
        words = here(command).split()
        assert Path(words[0]).is_file(), words[0]
        # The command's own words, its arguments left out (a folder that is not there).
        group = [w for w in words if not w.startswith("/")]
        done = subprocess.run([words[0], *group, "--help"], cwd=ROOT, env=command_env,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert f"Usage: flask {' '.join(group[2:])} [OPTIONS]" in done.stdout  # that very command


def test_the_web_unit_starts_gunicorn_with_the_repositorys_config(command_env: dict[str, str]) -> None:
    words = here(unit("coi-web.service")["Service"]["ExecStart"][0]).split()
    assert Path(words[0]).is_file(), words[0]
    if not (ROOT / "gunicorn.conf.py").exists():
        pytest.skip("gunicorn.conf.py is not in this checkout yet (the production recipe adds it)")
    done = subprocess.run([*words[:1], "--check-config", *words[1:]], cwd=ROOT, env=command_env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_no_container_files_that_cannot_be_built_here() -> None:
    """No Docker daemon on these machines: no Dockerfile nor compose file is shipped."""
    shipped = [path for pattern in ("Dockerfile*", "Containerfile*", "*compose*.y*ml", ".dockerignore")
               for path in ROOT.rglob(pattern) if ".venv" not in path.parts]
    assert not shipped
