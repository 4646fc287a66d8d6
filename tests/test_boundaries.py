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


def coi_import_graph() -> dict[str, set[str]]:
    """Module -> the coi modules it imports, at the top or inside a function (an import
    deferred into a function to dodge a cycle is still a cycle)."""
    modules = {module_name(path): path for path in sorted((REPO / "coi").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_coi_module_imports_itself_through_others() -> None:
    assert cycles(coi_import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"coi.services.alarms": {"coi.services.loggers"}, "coi.services.loggers": {"coi.services.alarms"},
             "coi.models": set()}

    assert cycles(graph) == [["coi.services.alarms", "coi.services.loggers"]]
