"""Cold chain: temperature logger files in, readings in true time order out, and those
readings judged against a product's temperature profile.

A library of its own: plain dataclasses, iterators and functions; it imports nothing from
`coi`, Flask, SQLAlchemy or SQLModel (tests/test_boundaries.py enforces it). Times are aware
datetimes in UTC, temperatures degrees Celsius.

This module is the front door: an application imports what it needs from `coldchain`
itself, never from a submodule (those are free to change). It offers:

- Reading a file: `read(stream, name=..., options=ReadOptions(zone=..., logger_id=...,
  mapping=ColumnMapping(...)))` detects the format and returns a `Source` whose
  `readings` (`Reading`: at, celsius, logger_id, line) are read as they are consumed, with
  rows that were not readings in `skipped` and rows that could not be read in `problems`
  (`Problem`: line, column, why). A file that cannot be trusted raises `Unreadable`. A
  daily-summary report (one row per day: min, max, time in alarm) gives no readings but
  `days` (`DaySummary`: day, min_c, max_c, minutes above / below / in alarm, its limits, line);
  `days` is None for every other file.
- A file detection cannot place: `layout_of(stream)` gives its columns, first rows and the
  `fingerprint` of its shape (a saved mapping is found again by it); `mapping_from(data)`
  reads a `ColumnMapping` from a form's or JSON's fields (`BadMapping` says what is wrong),
  `mapping_document(mapping)` writes it back.
- Which logger: `stated_logger(stream, name=...)` is the serial a file states of itself (None
  when it states none), `logger_key(serial)` the form serials are compared in (case, spaces,
  hyphens and underscores ignored: vendors print one serial several ways).
- Putting readings right: `normalise(readings, clock_offset=..., problems=..., tally=Tally())`
  corrects the logger's clock, restores time order and drops repeated rows, or raises
  `Unreadable` rather than guess; `clock_offset_from_handoff` measures a logger's clock at a
  handoff. `local_to_utc(local, zone)` places a wall-clock time in a zone, or says why it
  cannot (the hour the clocks skipped or repeated).
- Judging: `Profile` and `load_profiles` (the limits, from TOML); `Evaluator` turns one
  logger's readings into an `Evaluation` (excursions, gaps, mean kinetic temperature,
  `Breach`es); `judge_days` judges daily summaries into a `DayJudgement` (a breach per day in
  alarm); `stability_budget` sums a case's legs into a `Budget`.
- Drawing: the `chart` module (`chart.thin` keeps every bucket's min and max, `chart.svg`).
- On the command line: `python -m coldchain inspect FILE [--zone ZONE] [--mapping JSON|show]
  [--json]` says what the library reads from a file, or why it refuses it (see
  `coldchain.cli`).

`import coldchain` stays cheap: reading and normalising are loaded with it; judging and
drawing (which pull in TOML, resource and XML modules) load on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from coldchain.layout import BadMapping, Layout, layout_of, mapping_document, mapping_from, read_mapping
from coldchain.model import ColumnMapping, DaySummary, Problem, Reading, ReadOptions, Source, Unreadable
from coldchain.normalise import Tally, clock_offset_from_handoff, normalise
from coldchain.readers import read, stated_logger
from coldchain.readers.common import local_to_utc, logger_key

if TYPE_CHECKING:  # the names loaded on first use, for type checkers
    from coldchain import chart
    from coldchain.evaluate import (
        Breach,
        Budget,
        DayJudgement,
        Evaluation,
        Evaluator,
        judge_days,
        stability_budget,
    )
    from coldchain.profiles import Profile, load_profiles

__all__ = [
    "BadMapping",
    "Breach",
    "Budget",
    "ColumnMapping",
    "DayJudgement",
    "DaySummary",
    "Evaluation",
    "Evaluator",
    "Layout",
    "Problem",
    "Profile",
    "ReadOptions",
    "Reading",
    "Source",
    "Tally",
    "Unreadable",
    "chart",
    "clock_offset_from_handoff",
    "judge_days",
    "layout_of",
    "load_profiles",
    "local_to_utc",
    "logger_key",
    "mapping_document",
    "mapping_from",
    "normalise",
    "read",
    "read_mapping",
    "stability_budget",
    "stated_logger",
]

# name -> (module, attribute; None for the module itself). Loaded on first use (PEP 562):
# `coldchain.chart` pulls in xml.sax and through it urllib, http and ssl, and
# `coldchain.profiles` tomllib and importlib.resources; a reader of files needs none of them.
_ON_FIRST_USE: dict[str, tuple[str, str | None]] = {
    "chart": ("coldchain.chart", None),
    "Breach": ("coldchain.evaluate", "Breach"),
    "Budget": ("coldchain.evaluate", "Budget"),
    "Evaluation": ("coldchain.evaluate", "Evaluation"),
    "Evaluator": ("coldchain.evaluate", "Evaluator"),
    "DayJudgement": ("coldchain.evaluate", "DayJudgement"),
    "judge_days": ("coldchain.evaluate", "judge_days"),
    "stability_budget": ("coldchain.evaluate", "stability_budget"),
    "Profile": ("coldchain.profiles", "Profile"),
    "load_profiles": ("coldchain.profiles", "load_profiles"),
}


def __getattr__(name: str) -> object:
    try:
        module_name, attribute = _ON_FIRST_USE[name]
    except KeyError:
        raise AttributeError(f"module 'coldchain' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # once loaded, a plain attribute: no second trip through here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
