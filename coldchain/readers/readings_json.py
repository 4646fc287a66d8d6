"""The API's JSON readings: {"logger": "SN", "readings": [{"at": "2026-11-22T09:00:00+01:00",
"celsius": 5.1}, ...]} ("fahrenheit" instead of "celsius" is taken too). Every time must carry
its UTC offset. The document is all or nothing: any bad entry refuses it, listing the bad
entries by their 1-based position in the list (the `line` of the Problem and the Reading)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from math import isfinite

from coldchain.model import Problem, Reading, ReadOptions, Source, Unreadable
from coldchain.readers.common import KEEP, Notes, choose_logger, make_source, offset_name, refuse, usual_step

_SHAPE = 'send {"logger": "serial", "readings": [{"at": "2026-11-22T09:00:00+01:00", "celsius": 5.1}, ...]}'


def read_json_readings(document: object, *, options: ReadOptions) -> Source:
    """Read an already parsed JSON document of readings."""
    if not isinstance(document, dict) or not isinstance(document.get("readings"), list):
        raise refuse(f"the JSON has no list of readings: {_SHAPE}")
    stated = document.get("logger")
    if stated is not None and not isinstance(stated, str):
        raise refuse(f"'logger' must be the logger's serial as text: {_SHAPE}", column="logger")
    meta: dict[str, str] = {}
    logger_id = choose_logger(stated, options, meta)
    readings: list[Reading] = []
    problems: list[Problem] = []
    offsets: set[str] = set()
    for index, entry in enumerate(document["readings"], 1):
        outcome = _reading(entry, index)
        if isinstance(outcome, Problem):
            problems.append(outcome)
        else:
            at, celsius = outcome
            offsets.add(offset_name(at.utcoffset() or timedelta(0)))
            readings.append(Reading(at.astimezone(UTC), celsius, logger_id, index))
    if problems:
        more = len(problems) - KEEP
        raise Unreadable(problems[:KEEP] + ([Problem(None, None, f"and {more} more entries like these")]
                                             if more > 0 else []))

    if offsets:
        meta["zone_source"] = "per-row offsets"

    def rows(notes: Notes) -> Iterator[Reading]:
        yield from readings

    return make_source(format="readings-json", logger_id=logger_id, zone=", ".join(sorted(offsets)) or None,
                       interval=usual_step([reading.at for reading in readings]), meta=meta, rows=rows)


def _reading(entry: object, index: int) -> tuple[datetime, float] | Problem:
    """The entry's time (in its own offset) and temperature in °C, or what is wrong with it."""
    if not isinstance(entry, dict):
        return Problem(index, None, 'a reading must be an object like {"at": ..., "celsius": ...}')
    stated = entry.get("at")
    if not isinstance(stated, str):
        return Problem(index, "at", "the reading has no time ('at')")
    try:
        at = datetime.fromisoformat(stated)
    except ValueError:
        return Problem(index, "at", f"{_shown(stated)} is not a time like 2026-11-22T09:00:00+01:00")
    if at.tzinfo is None:
        return Problem(index, "at",
                       f"the time {_shown(stated)} has no UTC offset (add one, like +01:00 or Z)")
    units = [unit for unit in ("celsius", "fahrenheit") if unit in entry]
    if len(units) != 1:
        return Problem(index, None, "give the temperature as either 'celsius' or 'fahrenheit'")
    value = entry[units[0]]
    if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
        return Problem(index, units[0], f"{_shown(value)} is not a temperature (a number was expected)")
    celsius = float(value) if units[0] == "celsius" else (value - 32) * 5 / 9
    return at, celsius


def _shown(value: object) -> str:
    """A value quoted in a message, short: the messages go back to the sender and into the
    audit trail, so a megabyte string or a list nested 900 deep (whose repr would recurse as
    deep) is named, not copied."""
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "an object"
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
