"""Normalising readings: the logger's clock corrected, rows put in time order, repeats dropped,
and files refused when that would need a guess."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coldchain.model import Problem, Reading, Unreadable
from coldchain.normalise import Tally, clock_offset_from_handoff, normalise

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def reading(minute: float, celsius: float = 5.0, *, line: int, logger: str = "L1") -> Reading:
    return Reading(T0 + timedelta(minutes=minute), celsius, logger, line)


def run(
    readings: list[Reading], *, clock_offset: timedelta = timedelta(0), reorder_window: int = 4096
) -> tuple[list[Reading], list[Problem], Tally]:
    problems: list[Problem] = []
    tally = Tally()
    out = list(normalise(readings, clock_offset=clock_offset, reorder_window=reorder_window,
                         problems=problems, tally=tally))
    return out, problems, tally


def test_a_fast_logger_clock_is_corrected_to_true_time() -> None:
    offset = clock_offset_from_handoff(T0 + timedelta(minutes=3), T0)  # logger shows 09:03 at 09:00
    assert offset == timedelta(minutes=3)

    out, problems, _ = run([reading(3, line=2), reading(8, line=3)], clock_offset=offset)

    assert [r.at for r in out] == [T0, T0 + timedelta(minutes=5)]
    assert [r.line for r in out] == [2, 3]
    assert problems == []


def test_rows_slightly_out_of_order_come_out_in_time_order_and_are_noted() -> None:
    rows = [reading(0, line=2), reading(10, line=3), reading(5, line=4), reading(15, line=5)]

    out, problems, tally = run(rows, reorder_window=2)

    assert [r.line for r in out] == [2, 4, 3, 5]
    assert tally.reordered == 1
    assert [(p.line, "put in time order" in p.why) for p in problems] == [(4, True)]


def test_readings_of_several_loggers_are_interleaved_by_time() -> None:
    rows = [reading(0, line=2, logger="B"), reading(0, line=3, logger="A"), reading(5, line=4, logger="A")]

    out, _, _ = run(rows)

    assert [(r.logger_id, r.line) for r in out] == [("A", 3), ("B", 2), ("A", 4)]


def test_a_row_later_than_the_window_allows_refuses_the_file_naming_both_lines() -> None:
    rows = [reading(minute, line=minute + 2) for minute in range(10)] + [reading(1.5, line=812)]

    with pytest.raises(Unreadable) as refused:
        run(rows, reorder_window=4)

    message = str(refused.value)
    assert message.startswith("line 812: 2026-11-22 09:01:30 UTC comes after line 7's later time")
    assert "out of order by more than 4 rows" in message


def test_an_exact_repeat_is_dropped_and_counted() -> None:
    rows = [reading(0, line=10), reading(5, 6.5, line=11), reading(5, 6.5, line=12), reading(10, line=13)]

    out, problems, tally = run(rows)

    assert [r.line for r in out] == [10, 11, 13]
    assert tally.duplicates == 1
    assert problems[0].line == 12
    assert "1 repeated row(s)" in problems[0].why and "repeats line 11" in problems[0].why


def test_a_repeat_arriving_after_its_original_was_passed_on_is_still_dropped() -> None:
    rows = [reading(0, line=2), reading(5, line=3), reading(5, line=4)]

    out, _, tally = run(rows, reorder_window=0)

    assert [r.line for r in out] == [2, 3]
    assert tally.duplicates == 1


def test_two_values_for_the_same_time_refuse_the_file() -> None:
    rows = [reading(0, line=9), reading(5, 5.0, line=10), reading(5, 5.5, line=11)]

    with pytest.raises(Unreadable, match="lines 10 and 11 give two values for the same time"):
        run(rows)


def test_the_same_time_on_two_loggers_is_not_a_conflict() -> None:
    rows = [reading(0, 5.0, line=2, logger="A"), reading(0, 6.0, line=3, logger="B")]

    out, _, tally = run(rows)

    assert len(out) == 2 and tally.duplicates == 0


def test_readings_stamped_1970_after_a_clock_reset_are_kept_and_noted() -> None:
    """A logger whose battery was swapped restarts at its epoch: its next rows say 1970."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows = [reading(0, line=2), reading(5, line=3),
            Reading(epoch, 4.0, "L1", 4), Reading(epoch + timedelta(minutes=5), 4.1, "L1", 5)]

    out, problems, tally = run(rows)

    assert [r.line for r in out] == [4, 5, 2, 3]  # kept, in time order
    assert tally.reset == 2
    assert [p.line for p in problems] == [4, 4]
    assert problems[1].why.startswith("2 row(s) are stamped before 2000 (the first 1970-01-01 00:00:00 UTC): "
                                      "the logger's clock was reset")
