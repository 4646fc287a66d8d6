"""The house rules of imports (ARCHITECTURE section 2), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS = {"coi", "flask", "sqlmodel", "sqlalchemy", "werkzeug", "jinja2"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((REPO / "coldchain").rglob("*.py")), ids=str)
def test_coldchain_imports_nothing_from_coi_flask_or_sqlmodel(path):
    assert imported_roots(path) & FRAMEWORKS == set()


@pytest.mark.parametrize("path", sorted((REPO / "coi" / "labels").rglob("*.py")), ids=str)
def test_labels_know_no_requests_or_tables(path):
    assert imported_roots(path) & {"flask", "sqlmodel", "sqlalchemy", "werkzeug"} == set()


@pytest.mark.parametrize("module", ["identifiers.py", "route.py", "phi.py", "workflow.py"])
def test_identifier_and_route_rules_are_pure(module):
    source = REPO / "coi" / module
    assert imported_roots(source) & {"flask", "sqlmodel", "sqlalchemy"} == set()
    assert "coi.models" not in source.read_text()  # the models import SQLModel
