"""Readings as a reader gives them to readings in true time order, once each.

`normalise` is a streaming pass: it corrects the logger's clock, puts rows that arrive a
little out of order back in time order with a bounded heap (memory O(window), time
O(n log window)), and drops rows repeated verbatim. Anything it cannot put right without
guessing (a row far out of place, two values for one time) refuses the whole file."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from coldchain.model import Problem, Reading, Unreadable


@dataclass(slots=True)
class Tally:
    """What `normalise` put right, counted while the stream is consumed."""

    duplicates: int = 0  # rows dropped because an identical row came before
    reordered: int = 0  # rows that arrived after a row with a later time
    reset: int = 0  # rows stamped before CLOCK_RESET_BEFORE: a logger clock set back to its epoch


# A logger whose battery ran flat or was swapped restarts its clock at its epoch (1970 for
# most): readings stamped before this cannot be true times. They are kept and noted.
CLOCK_RESET_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)


def clock_offset_from_handoff(logger_time: datetime, scan_time: datetime) -> timedelta:
    """The logger's clock error, read at a handoff: the time the logger displayed
    (`logger_time`) minus the server time of the scan made at that moment (`scan_time`).
    Positive means the logger runs fast. Pass the result to `normalise`."""
    return logger_time - scan_time


def normalise(
    readings: Iterable[Reading],
    *,
    clock_offset: timedelta = timedelta(0),
    reorder_window: int = 4096,
    problems: list[Problem],
    tally: Tally | None = None,
) -> Iterator[Reading]:
    """Yield `readings` with `clock_offset` (logger clock minus true time) subtracted, in
    order of (time, logger), without exact repeats.

    A row may arrive up to `reorder_window` rows after rows with later times. Raises
    `Unreadable` (while iterating) for a row later than that, or for two rows of one logger
    giving different values for the same time. Notes on what was put right are appended
    to `problems` when the stream ends; `tally` (if given) counts them."""
    if reorder_window < 0:
        raise ValueError("reorder_window must not be negative")
    tally = tally if tally is not None else Tally()
    first_duplicate: tuple[int, int] | None = None  # (line, line it repeats)
    first_reordered: int | None = None
    first_reset: Reading | None = None
    heap: list[tuple[datetime, str, int, Reading]] = []
    latest_seen: Reading | None = None
    last_emitted: Reading | None = None
    emitted_now: dict[str, Reading] = {}  # by logger, the rows emitted at last_emitted's time

    def emit(reading: Reading) -> Reading | None:
        nonlocal last_emitted, first_duplicate, emitted_now
        if last_emitted is None or reading.at != last_emitted.at:
            emitted_now = {}
        earlier = emitted_now.get(reading.logger_id)
        if earlier is not None:
            if earlier.celsius != reading.celsius:
                raise Unreadable(Problem(
                    None, None,
                    f"lines {earlier.line} and {reading.line} give two values for the same time "
                    f"({_when(reading.at)}: {earlier.celsius:g} °C and {reading.celsius:g} °C)",
                ))
            tally.duplicates += 1
            first_duplicate = first_duplicate or (reading.line, earlier.line)
            return None
        emitted_now[reading.logger_id] = reading
        last_emitted = reading
        return reading

    for sequence, raw in enumerate(readings):
        reading = replace(raw, at=raw.at - clock_offset) if clock_offset else raw
        if last_emitted is not None and reading.at < last_emitted.at:
            raise Unreadable(Problem(
                reading.line, None,
                f"{_when(reading.at)} comes after line {last_emitted.line}'s later time "
                f"{_when(last_emitted.at)}; rows are out of order by more than {reorder_window} rows",
            ))
        if reading.at < CLOCK_RESET_BEFORE:
            tally.reset += 1
            first_reset = first_reset or reading
        if latest_seen is not None and reading.at < latest_seen.at:
            tally.reordered += 1
            first_reordered = first_reordered or reading.line
        if latest_seen is None or reading.at >= latest_seen.at:
            latest_seen = reading
        heapq.heappush(heap, (reading.at, reading.logger_id, sequence, reading))
        if len(heap) > reorder_window:
            kept = emit(heapq.heappop(heap)[3])
            if kept is not None:
                yield kept
    while heap:
        kept = emit(heapq.heappop(heap)[3])
        if kept is not None:
            yield kept

    if first_duplicate is not None:
        line, repeats = first_duplicate
        problems.append(Problem(
            line, None,
            f"{tally.duplicates} repeated row(s) (same logger, time and value) were dropped; "
            f"the first repeats line {repeats}",
        ))
    if first_reordered is not None:
        problems.append(Problem(
            first_reordered, None,
            f"{tally.reordered} row(s) came before rows with earlier times and were put in time order",
        ))
    if first_reset is not None:
        problems.append(Problem(
            first_reset.line, None,
            f"{tally.reset} row(s) are stamped before {CLOCK_RESET_BEFORE:%Y} (the first "
            f"{_when(first_reset.at)}): the logger's clock was reset; they are kept but are not "
            "true times",
        ))


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
