"""The house rules of imports (ARCHITECTURE section 2), checked where they matter: at run time.

The pure core (`coi/core`), the label library (`coi/labels`) and the cold-chain library
(`coldchain`) are whatever lives in those folders: each module is imported alone in a fresh
interpreter, and none may load a web or database framework, nor the app's own tables,
services or views. A module added to those folders is checked without being listed here."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("flask", "flask_wtf", "werkzeug", "sqlalchemy", "sqlmodel", "jinja2", "alembic")
APP_LAYERS = ("coi.app", "coi.models", "coi.services", "coi.views", "coi.api", "coi.db", "coi.jobs")
PURE_FOLDERS = (REPO / "coi" / "core", REPO / "coi" / "labels", REPO / "coldchain")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


PURE_MODULES = sorted(module_name(path) for folder in PURE_FOLDERS for path in folder.rglob("*.py"))


def loaded_by(module: str) -> list[str]:
    """What importing `module` alone, in a fresh interpreter, puts in sys.modules."""
    script = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_pure_folders_hold_the_modules_the_issue_names() -> None:
    for module in ("coi.core.identifiers", "coi.core.workflow", "coi.core.route", "coi.core.access",
                   "coi.core.vocabulary", "coi.core.alerting", "coi.labels", "coldchain"):
        assert module in PURE_MODULES


@pytest.mark.parametrize("module", PURE_MODULES)
def test_a_pure_module_loads_no_framework_and_no_app_layer(module: str) -> None:
    loaded = loaded_by(module)

    frameworks = sorted({name for name in loaded if name.split(".")[0] in FRAMEWORKS})
    layers = sorted(name for name in loaded if name.startswith(APP_LAYERS))
    assert frameworks == [] and layers == [], f"{module} loads {frameworks + layers}"


def test_the_check_sees_a_framework_when_one_is_loaded() -> None:
    # The same probe on a module of the app proper must see Flask, or it could never fail.
    loaded = loaded_by("coi.web")

    assert "flask" in loaded and "sqlmodel" in loaded


def test_importing_the_package_loads_nothing_but_the_package() -> None:
    loaded = loaded_by("coi")

    assert [name for name in loaded if name.startswith("coi.")] == []
    assert not {name.split(".")[0] for name in loaded} & set(FRAMEWORKS)


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((REPO / "coldchain").rglob("*.py")), ids=str)
def test_coldchain_names_nothing_from_coi_even_lazily(path: Path) -> None:
    # An import inside a function escapes the run-time check until it runs: read the source.
    assert imported_roots(path) & {"coi", *FRAMEWORKS} == set()


@pytest.mark.parametrize("path", sorted((REPO / "coi" / "core").rglob("*.py"))
                         + sorted((REPO / "coi" / "labels").rglob("*.py")), ids=str)
def test_the_core_and_labels_name_no_framework_even_lazily(path: Path) -> None:
    assert imported_roots(path) & set(FRAMEWORKS) == set()
    source = path.read_text()
    assert not any(f"{layer} import" in source or f"import {layer}" in source for layer in APP_LAYERS)
