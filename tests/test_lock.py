"""The lock files (requirements/*.txt, `make lock`) that `make` installs from with
`pip install --require-hashes`: each dependency pyproject.toml names is pinned there at a
version its specifier admits, and every pin carries hashes. A dependency added to
pyproject.toml without `make lock` fails here, not on a fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "coi-platform"


def pyproject() -> dict[str, list[Requirement]]:
    """pyproject.toml's requirements by group: the app's, then each extra's (the dev extra's
    reference to the project itself left out: the project is never in its lock)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"app": project["dependencies"], **project["optional-dependencies"]}
    return {group: [r for r in map(Requirement, texts) if canonicalize_name(r.name) != PROJECT]
            for group, texts in groups.items()}


def pins(lock: str) -> dict[str, tuple[Version, int]]:
    """A lock file's pins: name -> (version, number of --hash options)."""
    found: dict[str, tuple[Version, int]] = {}
    current = None
    for line in (ROOT / "requirements" / lock).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;\\]+)\s*\\?", stripped)
            assert match, f"{lock}: not a pin by version: {stripped!r}"
            current = canonicalize_name(match[1])
            assert current not in found, f"{lock}: {current} pinned twice"
            found[current] = (Version(match[2]), 0)
        elif stripped.startswith("--hash=sha256:"):
            assert current is not None
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


LOCKS = {"app.txt": ("app",), "test.txt": ("app", "test", "dev")}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_dependency_is_pinned_at_an_admitted_version(lock: str) -> None:
    pinned = pins(lock)
    wanted = [r for group in LOCKS[lock] for r in pyproject()[group]]
    assert wanted, "pyproject.toml lists no dependencies?"
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in requirements/{lock}: run make lock"
        version = pinned[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {name}=={version}, which {requirement} does not admit: "
            "run make lock")
        for extra in requirement.extras:  # psycopg[binary]: the extra's package is pinned too
            assert canonicalize_name(f"{name}-{extra}") in pinned, f"{requirement}: {extra} not locked"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_pin_has_hashes(lock: str) -> None:
    pinned = pins(lock)
    assert pinned
    unhashed = sorted(name for name, (_version, hashes) in pinned.items() if not hashes)
    assert not unhashed, f"requirements/{lock}: pins without --hash (refused by pip): {unhashed}"


def test_the_app_lock_agrees_with_the_test_lock() -> None:
    """A package both install is at one version in both, so tests run what production runs."""
    app, test = pins("app.txt"), pins("test.txt")
    differ = {name: (str(app[name][0]), str(test[name][0])) for name in app
              if name in test and app[name][0] != test[name][0]}
    missing = sorted(set(app) - set(test))
    assert not differ and not missing, f"app.txt and test.txt differ: {differ}, only in app.txt: {missing}"


def test_makefile_installs_from_the_locks_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for lock in LOCKS:
        assert f"--require-hashes -r requirements/{lock}" in makefile
    assert "--no-deps -e ." in makefile
