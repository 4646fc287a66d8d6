"""Temperature profiles: the limits a shipment is judged against, loaded from TOML.

The built-in profiles live in `profiles.toml` next to this module; a site may configure a
file of the same shape. The file names durations in minutes; `Profile` holds timedeltas."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

_TEMPERATURES = ("low", "pre_low", "pre_high", "high")  # in the order they must rise
_DURATIONS = (
    "max_single_excursion_minutes",
    "max_cumulative_minutes",
    "stability_budget_minutes",
    "default_interval_minutes",
)
_KEYS = frozenset(("title", "gap_intervals", *_TEMPERATURES, *_DURATIONS))


@dataclass(frozen=True)
class Profile:
    """One product temperature profile. A limit of None means no limit on that side; a
    reading exactly at a limit is within it."""

    name: str
    title: str
    low: float | None
    high: float | None
    pre_low: float | None
    pre_high: float | None
    max_single_excursion: timedelta  # one continuous breach longer than this is an alarm
    max_cumulative: timedelta  # total time out of range allowed per shipment
    stability_budget: timedelta  # time out of range allowed across all legs of a case
    gap_intervals: int  # a gap longer than this many logging intervals is a data gap
    default_interval: timedelta  # the logging interval when the logger's is unknown

    def as_rule(self) -> dict[str, Any]:
        """A JSON-able copy of the profile in the shape of the TOML file (durations in
        minutes), to be stored with an alarm so a later change of the profile does not
        rewrite what the alarm was judged against."""
        return {
            "profile": self.name,
            "title": self.title,
            "low": self.low,
            "high": self.high,
            "pre_low": self.pre_low,
            "pre_high": self.pre_high,
            "max_single_excursion_minutes": _minutes(self.max_single_excursion),
            "max_cumulative_minutes": _minutes(self.max_cumulative),
            "stability_budget_minutes": _minutes(self.stability_budget),
            "gap_intervals": self.gap_intervals,
            "default_interval_minutes": _minutes(self.default_interval),
        }

    @classmethod
    def from_rule(cls, rule: Mapping[str, Any]) -> Profile:
        """The profile an `as_rule` copy describes, checked as a profiles file is (a shipment
        keeps the profile it started with). Raises ValueError naming the profile and key."""
        name = rule.get("profile")
        if not isinstance(name, str) or not name:
            raise ValueError("the rule names no profile")
        try:
            return _profile(name, {key: value for key, value in rule.items()
                                   if key != "profile" and value is not None})
        except ValueError as error:
            raise ValueError(f"profile {name!r}: {error}") from error


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """The profiles of `path`, or the built-in ones, by name. Raises ValueError naming the
    file, profile and key for anything wrong: unknown or missing keys, wrong types,
    limits out of order (low < pre_low < pre_high < high), negative durations, a zero
    interval."""
    if path is None:
        where = "built-in profiles.toml"
        text = resources.files("coldchain").joinpath("profiles.toml").read_text(encoding="utf-8")
    else:
        where = str(path)
        text = path.read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{where}: not valid TOML: {error}") from error
    unknown = set(document) - {"profiles"}
    if unknown:
        raise ValueError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    tables = document.get("profiles")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{where}: no [profiles.\"name\"] tables")
    profiles = {}
    for name, table in tables.items():
        try:
            profiles[name] = _profile(name, table)
        except ValueError as error:
            raise ValueError(f"{where}: profile {name!r}: {error}") from error
    return profiles


def _profile(name: str, table: object) -> Profile:
    if not isinstance(table, dict):
        raise ValueError("must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}")
    missing = {"title", "gap_intervals", *_DURATIONS} - set(table)
    if missing:
        raise ValueError(f"missing key(s) {', '.join(sorted(missing))}")
    if not isinstance(table["title"], str) or not table["title"].strip():
        raise ValueError("title must be non-empty text")
    temperatures = {key: _number(key, table[key]) for key in _TEMPERATURES if key in table}
    if "low" not in temperatures and "high" not in temperatures:
        raise ValueError("needs low, high or both")
    for (below, low), (above, high) in pairwise(temperatures.items()):
        if not low < high:
            raise ValueError(f"{below} ({low:g}) must be below {above} ({high:g})")
    durations = {}
    for key in _DURATIONS:
        minutes = _number(key, table[key])
        if minutes < 0:
            raise ValueError(f"{key} must not be negative ({minutes:g})")
        durations[key] = timedelta(minutes=minutes)
    # A zero allowance is a real choice (no excursion tolerated); a zero interval is not.
    if not durations["default_interval_minutes"]:
        raise ValueError("default_interval_minutes must be more than 0")
    gap_intervals = table["gap_intervals"]
    if isinstance(gap_intervals, bool) or not isinstance(gap_intervals, int) or gap_intervals < 1:
        raise ValueError(f"gap_intervals must be a whole number of at least 1, not {gap_intervals!r}")
    return Profile(
        name=name,
        title=table["title"],
        low=temperatures.get("low"),
        high=temperatures.get("high"),
        pre_low=temperatures.get("pre_low"),
        pre_high=temperatures.get("pre_high"),
        max_single_excursion=durations["max_single_excursion_minutes"],
        max_cumulative=durations["max_cumulative_minutes"],
        stability_budget=durations["stability_budget_minutes"],
        gap_intervals=gap_intervals,
        default_interval=durations["default_interval_minutes"],
    )


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number, not {value!r}")
    return float(value)


def _minutes(duration: timedelta) -> float | int:
    minutes = duration / timedelta(minutes=1)
    return int(minutes) if minutes.is_integer() else minutes
