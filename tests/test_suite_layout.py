"""The suite's own layout: what test modules share lives in helper modules (tests/helpers.py,
tests/browser.py, tests/databases.py), so no module imports a test module or conftest.py.
Importing a test module would run its module-level code twice and drag its fixtures along;
importing conftest.py would load it a second time under another name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every module `path` imports, at any depth of its code; a
    relative import is resolved against the tests package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import test_x / from .test_x import y
                base = "tests" + (f".{node.module}" if node.module else "")
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
                found.append((node.lineno, base))
            elif node.module:
                found.append((node.lineno, node.module))
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def is_test_module_or_conftest(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "tests":
        parts = parts[1:]
    return bool(parts) and (parts[0].startswith("test_") or parts[0] == "conftest")


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda path: path.name)
def test_no_module_of_the_suite_imports_a_test_module_or_conftest(path):
    offending = sorted({f"line {line}: {name}" for line, name in imported_modules(path)
                        if is_test_module_or_conftest(name)})
    assert offending == [], (f"{path.name} imports a test module or conftest.py; move what it "
                             "needs to tests/helpers.py (or browser.py, databases.py)")


def test_the_layout_check_sees_every_way_of_importing_a_test_module(tmp_path):
    # The package's name is put in by format(), so that grepping the suite for these imports
    # finds none.
    module = tmp_path / "test_example.py"
    module.write_text("import {tests}.test_api\n"
                      "from {tests}.test_custody import Flow\n"
                      "from {tests} import test_shipments\n"
                      "from .test_enrolment import count\n"
                      "from {tests}.conftest import World\n"
                      "def later():\n"
                      "    from {tests}.test_browser_scan import wedge\n"
                      "from {tests}.helpers import login\n".format(tests="tests"))
    flagged = {name for _line, name in imported_modules(module) if is_test_module_or_conftest(name)}
    assert flagged >= {"tests.test_api", "tests.test_custody", "tests.test_shipments",
                       "tests.test_enrolment", "tests.conftest", "tests.test_browser_scan"}
    assert not {name for name in flagged if name.startswith("tests.helpers")}
