"""The cold-chain library stands alone: nothing in it imports the app or its frameworks, so it
can be used and validated by itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import coldchain

PACKAGE = Path(coldchain.__file__).resolve().parent
FORBIDDEN = {"coi", "flask", "sqlmodel", "sqlalchemy", "werkzeug", "jinja2"}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_no_module_of_coldchain_imports_the_app_or_a_framework() -> None:
    offending = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: import {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, module in imported_modules(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if module.split(".")[0] in FORBIDDEN
    ]

    assert offending == []


def test_importing_all_of_coldchain_loads_no_framework() -> None:
    modules = sorted(
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in PACKAGE.rglob("*.py")
    )
    script = (
        f"import {', '.join(modules)}; import sys; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r}))"
    )

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=PACKAGE.parent)

    assert done.stdout.strip() == "[]"
