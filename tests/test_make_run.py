"""`make run` runs the whole platform: the web server and the scheduler under honcho
(Procfile.dev). Started here as `make run` starts them, on a demo database of its own: the
web server answers, the scheduler keeps the demo's alarm e-mails in the development outbox,
both log to the one terminal, Ctrl-C (SIGINT to honcho) stops both, and one dying stops the
other."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 90.0  # for each thing awaited: a loaded machine starts Python slowly
STARTED = ("web", "scheduler")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Terminal:
    """What honcho writes, read as it comes (a pipe left unread would stall it)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def pid_of(self, name: str) -> int | None:
        """The pid honcho reports for a process it started ("web.1 started (pid=123)")."""
        for line in list(self.lines):
            if f"{name}.1 started (pid=" in line:
                return int(line.split("(pid=")[1].split(")")[0])
        return None


def wait_for(what: str, check: Callable[[], Any], terminal: Terminal) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {WAIT_S:.0f} s. honcho wrote:\n{terminal.text}")


def in_group(group: int) -> list[str]:
    """The processes of process group `group` still alive (zombies are gone for our purpose),
    read from /proc: each as "pid command line"."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(f"{entry.name} {command.strip()}")
    return alive


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def kept_emails(database: Path) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM outbox_message").fetchone()[0])
    except sqlite3.Error:  # busy, or not migrated yet
        return 0


@pytest.fixture
def environment(run_config: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """A development machine with no mail server: its own SQLite database, the venv's
    commands first on PATH (as `make run` puts them), short scheduler intervals."""
    variables = {name: value for name, value in os.environ.items()
                 if not name.startswith(("COI_", "FLASK_"))}
    return variables | {
        "COI_MODE": "development", "COI_DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "COI_SECRET_KEY": run_config["SECRET_KEY"], "COI_PHI_KEYS": ",".join(run_config["PHI_KEYS"]),
        "COI_PHI_INDEX_KEY": run_config["PHI_INDEX_KEY"],
        "COI_INSTALLATION_SIGNING_KEY": run_config["INSTALLATION_SIGNING_KEY"],
        "COI_SWEEP_INTERVAL_SECONDS": "2", "COI_DELIVERY_INTERVAL_SECONDS": "1",
        "PORT": str(free_port()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture
def platform(environment: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], Terminal]]:
    """`make run` after its install steps: `flask coi init`, then honcho with Procfile.dev in
    a process group of its own. Whatever is left at the end is killed, whatever failed."""
    init = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "coi", "init"],  # noqa: S603
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, f"flask coi init failed:\n{init.stdout}\n{init.stderr}"
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "-f", "Procfile.dev", "start"],  # noqa: S603
                              cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    terminal = Terminal(honcho)
    try:
        yield honcho, terminal
    finally:
        # honcho starts each process in a session of its own: their groups are their pids.
        groups = [honcho.pid, *(pid for pid in map(terminal.pid_of, STARTED) if pid)]
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        honcho.wait(timeout=30)


def test_make_run_serves_the_web_and_runs_the_scheduler_and_ctrl_c_stops_both(platform, environment):
    honcho, terminal = platform
    port, database = int(environment["PORT"]), Path(environment["COI_DATABASE_URL"][len("sqlite:///"):])

    web, scheduler = (wait_for(f"honcho starting {name}", lambda n=name: terminal.pid_of(n), terminal)
                      for name in STARTED)
    wait_for(f"/healthz answering on port {port}", lambda: healthy(port), terminal)
    wait_for("the scheduler keeping the demo's alarm e-mails in the outbox",
             lambda: kept_emails(database), terminal)
    # Both processes' log lines reach the terminal, each prefixed with its name.
    wait_for("the web server's and the scheduler's log lines",
             lambda: "GET /healthz" in terminal.text and "Scheduler started" in terminal.text, terminal)
    assert any(line.split("|")[0].strip().endswith("web.1") and "GET /healthz" in line
               for line in terminal.lines), terminal.text
    assert any(line.split("|")[0].strip().endswith("scheduler.1") and "Scheduler started" in line
               for line in terminal.lines), terminal.text

    honcho.send_signal(signal.SIGINT)  # Ctrl-C in the terminal reaches honcho
    try:
        honcho.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"honcho still runs {WAIT_S:.0f} s after Ctrl-C:\n{terminal.text}")

    assert in_group(web) == [], f"the web server outlived Ctrl-C:\n{terminal.text}"
    assert in_group(scheduler) == [], f"the scheduler outlived Ctrl-C:\n{terminal.text}"
    assert not healthy(port), "something still answers on the web server's port"


def test_when_one_process_dies_make_run_stops_the_other(platform, environment):
    honcho, terminal = platform
    port = int(environment["PORT"])
    web, scheduler = (wait_for(f"honcho starting {name}", lambda n=name: terminal.pid_of(n), terminal)
                      for name in STARTED)
    wait_for(f"/healthz answering on port {port}", lambda: healthy(port), terminal)

    os.killpg(scheduler, signal.SIGKILL)  # the scheduler crashes
    try:
        honcho.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"honcho still runs {WAIT_S:.0f} s after the scheduler died:\n{terminal.text}")

    assert honcho.returncode != 0, "make run ended as if nothing had gone wrong"
    assert in_group(web) == [], f"the web server outlived the scheduler:\n{terminal.text}"
