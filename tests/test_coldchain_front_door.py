"""`coldchain`'s front door: everything the app needs is importable from `coldchain` itself,
it is the very object the submodule defines, `import coldchain` stays cheap, and the app
(read from its source, so a lazy import inside a function counts too) uses nothing else."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import coldchain

REPO = Path(__file__).resolve().parent.parent
ZURICH = ZoneInfo("Europe/Zurich")


def wall(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    """A wall-clock time as a person types it: no zone."""
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)

# Where each public name lives today; the front door must hand out the same objects, so an
# `isinstance` or `except` in the app works whichever way a name was imported.
HOMES = {
    "Breach": "coldchain.evaluate", "Budget": "coldchain.evaluate", "Evaluation": "coldchain.evaluate",
    "Evaluator": "coldchain.evaluate", "stability_budget": "coldchain.evaluate",
    "DayJudgement": "coldchain.evaluate", "judge_days": "coldchain.evaluate", "DaySummary": "coldchain.model",
    "ColumnMapping": "coldchain.model", "Problem": "coldchain.model", "Reading": "coldchain.model",
    "ReadOptions": "coldchain.model", "Source": "coldchain.model", "Unreadable": "coldchain.model",
    "Tally": "coldchain.normalise", "clock_offset_from_handoff": "coldchain.normalise",
    "normalise": "coldchain.normalise",
    "Profile": "coldchain.profiles", "load_profiles": "coldchain.profiles",
    "read": "coldchain.readers", "stated_logger": "coldchain.readers",
    "local_to_utc": "coldchain.readers.common", "logger_key": "coldchain.readers.common",
    "BadMapping": "coldchain.layout", "Layout": "coldchain.layout", "layout_of": "coldchain.layout",
    "mapping_document": "coldchain.layout", "mapping_from": "coldchain.layout",
    "read_mapping": "coldchain.layout",
}


def test_every_name_the_front_door_lists_exists() -> None:
    missing = [name for name in coldchain.__all__ if not hasattr(coldchain, name)]

    assert missing == []
    assert len(set(coldchain.__all__)) == len(coldchain.__all__)


def test_the_front_door_hands_out_the_objects_the_submodules_define() -> None:
    assert set(coldchain.__all__) == set(HOMES) | {"chart"}
    for name, home in HOMES.items():
        assert getattr(coldchain, name) is getattr(importlib.import_module(home), name), name
    assert coldchain.chart is importlib.import_module("coldchain.chart")


def test_a_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from coldchain import *", namespace)  # noqa: S102 - a fixed statement, the point of the test

    assert set(coldchain.__all__) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error_that_names_it() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Localiser'"):
        coldchain.Localiser  # noqa: B018 - the internal class is not part of the front door

    with pytest.raises(ImportError):
        exec("from coldchain import Localiser")  # noqa: S102


def test_importing_coldchain_loads_neither_judging_nor_drawing_nor_their_heavy_modules() -> None:
    script = "import json, sys; import coldchain; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          check=True)
    loaded = set(json.loads(done.stdout))

    assert {"coldchain.readers", "coldchain.normalise"} <= loaded
    assert not loaded & {"coldchain.chart", "coldchain.evaluate", "coldchain.profiles", "tomllib",
                         "importlib.resources", "xml.sax", "urllib.request", "http.client", "ssl"}


def test_local_to_utc_places_a_typed_time_and_refuses_the_hours_the_clocks_skipped_or_repeated() -> None:
    # Zurich: CET (UTC+1) in winter, CEST (UTC+2) from 2026-03-29 02:00 to 2026-10-25 03:00.
    assert coldchain.local_to_utc(wall(2026, 1, 15, 9, 30), ZURICH) == utc(2026, 1, 15, 8, 30)
    assert coldchain.local_to_utc(wall(2026, 7, 15, 9, 30), ZURICH) == utc(2026, 7, 15, 7, 30)
    assert coldchain.local_to_utc(utc(2026, 7, 15, 9, 30), ZURICH) == utc(2026, 7, 15, 9, 30)

    skipped = coldchain.local_to_utc(wall(2026, 3, 29, 2, 30), ZURICH)
    repeated = coldchain.local_to_utc(wall(2026, 10, 25, 2, 30), ZURICH)

    assert isinstance(skipped, str) and "does not exist in Europe/Zurich" in skipped
    assert isinstance(repeated, str) and "happened twice in Europe/Zurich" in repeated


def test_the_app_can_measure_a_clock_through_the_front_door() -> None:
    # What coi/services/loggers.py does at a clock check, with front-door names only.
    shown = coldchain.local_to_utc(wall(2026, 7, 15, 9, 30, 40), ZURICH)
    assert isinstance(shown, datetime)

    offset = coldchain.clock_offset_from_handoff(shown, utc(2026, 7, 15, 7, 30))

    assert offset == timedelta(seconds=40)


# ---------------------------------------------------------------- what the app imports

def coldchain_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import of coldchain in a file, at any depth."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names
                      if alias.name.split(".")[0] == "coldchain"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "coldchain":
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


APP_IMPORTS = [(path.relative_to(REPO), *found) for path in sorted((REPO / "coi").rglob("*.py"))
               for found in coldchain_imports(path)]


def test_the_app_imports_coldchain_somewhere() -> None:
    # Guards the two checks below: if the walk found nothing, they would pass for nothing.
    assert APP_IMPORTS


def test_every_name_the_app_takes_from_coldchain_itself_is_on_the_front_door() -> None:
    unlisted = [f"{path}:{line}: {name}" for path, line, module, names in APP_IMPORTS
                if module == "coldchain" for name in names if name not in coldchain.__all__]

    assert unlisted == []


def test_the_app_imports_only_the_front_door_never_a_coldchain_submodule() -> None:
    internal = [f"{path}:{line}: {module}" for path, line, module, _ in APP_IMPORTS if module != "coldchain"]

    assert internal == []
