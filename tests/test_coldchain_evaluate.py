"""Judging readings against temperature profiles: excursions, allowances, gaps, the window,
summary figures, breach keys, the stability budget, and the profiles file itself.

Convention under test: a duration equal to what is allowed is within the allowance; only a
longer one is a breach."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coldchain.evaluate import Evaluation, Evaluator, stability_budget
from coldchain.model import Reading
from coldchain.profiles import Profile, load_profiles

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
PROFILES = load_profiles()
FRIDGE = PROFILES["2-8C"]  # 2-8 C, pre-alarm 3-7 C, 30 min single, 60 min cumulative, 5 min x 3


def evaluate(
    profile: Profile,
    points: Sequence[tuple[timedelta, float]],
    *,
    window: tuple[datetime | None, datetime | None] = (None, None),
    interval: timedelta | None = None,
) -> Evaluation:
    evaluator = Evaluator(profile, window_start=window[0], window_end=window[1], interval=interval)
    for line, (offset, celsius) in enumerate(points, start=2):
        evaluator.feed(Reading(T0 + offset, celsius, "L1", line))
    return evaluator.result()


def every_5_min(*values: float) -> list[tuple[timedelta, float]]:
    return [(5 * i * MINUTE, value) for i, value in enumerate(values)]


def codes(evaluation: Evaluation) -> list[str]:
    return [breach.code for breach in evaluation.breaches]


def test_a_reading_exactly_at_a_limit_is_in_range() -> None:
    result = evaluate(FRIDGE, every_5_min(2.0, 8.0, 8.0, 2.0))

    assert result.excursions == []
    assert result.time_in_range == 15 * MINUTE
    assert result.time_out_of_range == timedelta(0)
    assert codes(result) == ["pre_alarm"]  # 8.0 is beyond the 7.0 pre-alarm limit, not the alarm limit


@pytest.mark.parametrize(
    ("beyond_allowed", "breached"), [(-SECOND, False), (timedelta(0), False), (SECOND, True)]
)
def test_only_an_excursion_longer_than_allowed_is_a_single_event_breach(
    beyond_allowed: timedelta, breached: bool
) -> None:
    # Out from 09:05 every 5 min until the reading back in range, 30 min after it went out.
    points = [(timedelta(0), 5.0)] + [((5 + 5 * i) * MINUTE, 9.5) for i in range(6)]
    points.append((35 * MINUTE + beyond_allowed, 5.0))

    result = evaluate(FRIDGE, points)

    [excursion] = result.excursions
    assert excursion.duration == 30 * MINUTE + beyond_allowed
    assert ("excursion_single" in codes(result)) is breached


def test_the_single_event_message_says_how_far_how_long_and_when() -> None:
    result = evaluate(FRIDGE, every_5_min(5, 9, 17.4, 12, 9, 9, 9, 9, 9, 9, 5))

    [breach] = [b for b in result.breaches if b.code == "excursion_single"]
    assert breach.severity == "critical"
    assert breach.message == (
        "Up to 9.4 °C above the 8.0 °C limit (peak 17.4 °C) for 45 min from 2026-11-22 09:05 UTC "
        "(allowed 30 min)"
    )
    assert breach.rule["rule"] == "coldchain.excursion_single"
    assert breach.rule["limit"] == 8.0 and breach.rule["max_single_excursion_minutes"] == 30
    assert breach.excursion is not None and breach.excursion.peak_at == T0 + 10 * MINUTE
    assert (breach.excursion.first_line, breach.excursion.last_line) == (3, 11)
    json.dumps(breach.rule)


def test_several_short_excursions_add_up_to_a_cumulative_breach() -> None:
    # Three excursions of 25 min each below the 2 C limit, 75 min out in total, 60 allowed.
    one = [1.5] * 5 + [5.0] * 3
    result = evaluate(FRIDGE, every_5_min(5.0, *one, *one, *one))

    assert [e.kind for e in result.excursions] == ["low"] * 3
    assert result.time_out_of_range == 75 * MINUTE
    assert codes(result) == ["excursion_cumulative"]
    [breach] = result.breaches
    assert breach.severity == "major"
    assert breach.message.startswith("Out of range for 1 h 15 min in total in 3 excursion(s)")


def test_a_pre_alarm_run_longer_than_one_interval_is_a_minor_breach() -> None:
    result = evaluate(FRIDGE, every_5_min(5.0, 7.5, 5.0, 7.5, 7.8, 5.0, 2.5, 2.9, 5.0))

    assert [(run.kind, run.duration) for run in result.pre_alarms] == [
        ("pre_high", 5 * MINUTE), ("pre_high", 10 * MINUTE), ("pre_low", 10 * MINUTE),
    ]
    assert result.excursions == []
    assert [(b.code, b.severity) for b in result.breaches] == [("pre_alarm", "minor")] * 2
    assert "above the 7.0 °C pre-alarm limit (peak 7.8 °C) for 10 min" in result.breaches[0].message


def test_a_gap_of_exactly_k_intervals_is_not_a_data_gap() -> None:
    result = evaluate(FRIDGE, [(timedelta(0), 5.0), (15 * MINUTE, 5.0)])

    assert result.gaps == [] and codes(result) == []
    assert result.time_in_range == 15 * MINUTE


def test_a_gap_just_over_k_intervals_is_a_data_gap_counted_neither_in_nor_out() -> None:
    result = evaluate(FRIDGE, [(timedelta(0), 9.0), (15 * MINUTE + SECOND, 9.0), (20 * MINUTE + SECOND, 5.0)])

    [gap] = result.gaps
    assert (gap.start, gap.end) == (T0, T0 + 15 * MINUTE + SECOND)
    assert result.longest_gap == 15 * MINUTE + SECOND
    assert result.time_in_range == timedelta(0)
    assert result.time_out_of_range == 5 * MINUTE  # only the hold after the gap
    assert "data_gap" in codes(result)


def test_the_logging_interval_of_the_logger_sets_the_gap_length() -> None:
    result = evaluate(FRIDGE, [(timedelta(0), 5.0), (4 * MINUTE, 5.0)], interval=MINUTE)

    assert [(g.start, g.end) for g in result.gaps] == [(T0, T0 + 4 * MINUTE)]
    assert "(allowed 3 min: 3 × the 1 min interval)" in result.breaches[0].message


def test_readings_outside_the_window_are_counted_but_not_evaluated() -> None:
    points = [(timedelta(0), 20.0), (5 * MINUTE, 20.0), (10 * MINUTE, 5.0), (15 * MINUTE, 5.0),
              (20 * MINUTE, 30.0)]

    result = evaluate(FRIDGE, points, window=(T0 + 10 * MINUTE, T0 + 15 * MINUTE))

    assert result.count == 2
    assert result.excursions == [] and codes(result) == []
    assert result.max_celsius == 5.0
    assert (result.before_window.count, result.before_window.first, result.before_window.last) == (
        2, T0, T0 + 5 * MINUTE)
    assert (result.after_window.count, result.after_window.first) == (1, T0 + 20 * MINUTE)


def test_a_logger_started_well_after_dispatch_leaves_a_gap_at_the_start() -> None:
    result = evaluate(FRIDGE, every_5_min(5.0, 5.0), window=(T0 - 20 * MINUTE, None))

    assert [(g.start, g.end) for g in result.gaps] == [(T0 - 20 * MINUTE, T0)]


def test_no_reading_inside_the_window_is_a_breach() -> None:
    result = evaluate(FRIDGE, every_5_min(5.0), window=(T0 + MINUTE, T0 + 2 * MINUTE))

    assert [(b.code, b.severity) for b in result.breaches] == [("no_readings", "major")]
    assert result.breaches[0].message == (
        "No readings from logger L1 between 2026-11-22 09:01 UTC and 2026-11-22 09:02 UTC")
    assert result.mkt_celsius is None and result.mean_celsius is None


def test_an_excursion_still_out_at_the_last_reading_is_ongoing() -> None:
    result = evaluate(FRIDGE, every_5_min(5.0, 9.0, 10.0, 11.0))

    [excursion] = result.excursions
    assert excursion.ongoing and (excursion.start, excursion.end) == (T0 + 5 * MINUTE, T0 + 15 * MINUTE)
    assert excursion.peak == 11.0


def test_a_series_that_grows_keeps_the_breach_key_of_its_excursion() -> None:
    values = [5.0] + [12.0] * 10
    before = evaluate(FRIDGE, every_5_min(*values))
    after = evaluate(FRIDGE, every_5_min(*values, 12.0, 12.0, 5.0))

    [first] = [b for b in before.breaches if b.code == "excursion_single"]
    [second] = [b for b in after.breaches if b.code == "excursion_single"]
    assert first.ongoing and not second.ongoing
    assert second.end is not None and first.end is not None and second.end > first.end
    assert first.key == second.key == "excursion_single:L1:2026-11-22T09:05:00+00:00"
    assert [b.key for b in before.breaches if b.code == "excursion_cumulative"] == [
        b.key for b in after.breaches if b.code == "excursion_cumulative"]


def test_summary_gives_min_max_mean_with_their_times() -> None:
    result = evaluate(FRIDGE, every_5_min(4.0, 6.0, 3.0, 7.0))

    assert (result.min_celsius, result.min_at) == (3.0, T0 + 10 * MINUTE)
    assert (result.max_celsius, result.max_at) == (7.0, T0 + 15 * MINUTE)
    assert result.mean_celsius == 5.0
    assert (result.first, result.last, result.count) == (T0, T0 + 15 * MINUTE, 4)


def test_mean_kinetic_temperature_of_a_constant_temperature_is_that_temperature() -> None:
    result = evaluate(FRIDGE, every_5_min(5.0, 5.0, 5.0))

    assert result.mkt_celsius == pytest.approx(5.0, abs=1e-9)


def test_mean_kinetic_temperature_weighs_warm_readings_more_than_the_mean() -> None:
    # Worked by hand: dH/R = 83144 / 8.3144 = 10000 K; T = 275.15 K and 293.15 K.
    expected = 10000 / -math.log((math.exp(-10000 / 275.15) + math.exp(-10000 / 293.15)) / 2) - 273.15

    result = evaluate(FRIDGE, every_5_min(2.0, 20.0))

    assert result.mkt_celsius == pytest.approx(expected, abs=1e-9)
    assert result.mkt_celsius == pytest.approx(15.006, abs=0.001)
    assert result.mean_celsius == 11.0


def test_dry_ice_has_no_lower_limit() -> None:
    result = evaluate(PROFILES["dry-ice"], every_5_min(-79.0, -100.0, -62.0, -55.0, -55.0, -80.0))

    assert [(e.kind, e.limit, e.duration) for e in result.excursions] == [("high", -60.0, 10 * MINUTE)]
    assert [(r.kind, r.duration) for r in result.pre_alarms] == [("pre_high", 5 * MINUTE)]
    assert codes(result) == []  # 10 min out: within 15 min single and 30 min cumulative


def test_readings_fed_out_of_order_are_refused() -> None:
    evaluator = Evaluator(FRIDGE, window_start=None, window_end=None, interval=None)
    evaluator.feed(Reading(T0, 5.0, "L1", 2))

    with pytest.raises(ValueError, match="line 3: readings must be fed in time order"):
        evaluator.feed(Reading(T0, 5.0, "L1", 3))


def test_stability_budget_is_summed_across_all_legs() -> None:
    budget = stability_budget(FRIDGE, [20 * MINUTE, 45 * MINUTE])
    assert (budget.total, budget.used, budget.left, budget.exhausted) == (
        120 * MINUTE, 65 * MINUTE, 55 * MINUTE, False)

    assert not stability_budget(FRIDGE, [60 * MINUTE, 60 * MINUTE]).exhausted
    over = stability_budget(FRIDGE, [60 * MINUTE, 60 * MINUTE, SECOND])
    assert over.exhausted and over.left == timedelta(0)


@given(st.lists(st.tuples(st.integers(1, 1200), st.floats(-5, 15, allow_nan=False)), min_size=1, max_size=60))
def test_cumulative_time_out_of_range_matches_a_brute_force_count(steps: list[tuple[int, float]]) -> None:
    points, offset = [], timedelta(0)
    for seconds, celsius in steps:
        offset += seconds * SECOND
        points.append((offset, celsius))

    result = evaluate(FRIDGE, points)

    expected = timedelta(0)
    for (at, celsius), (next_at, _) in zip(points, points[1:], strict=False):
        if next_at - at <= 15 * MINUTE and not 2.0 <= celsius <= 8.0:
            expected += next_at - at
    assert result.time_out_of_range == expected
    assert sum((e.duration for e in result.excursions), timedelta(0)) == expected


# ---------------------------------------------------------------------- profiles

def test_built_in_profiles_have_their_limits() -> None:
    assert {name: (p.low, p.pre_low, p.pre_high, p.high) for name, p in PROFILES.items()} == {
        "2-8C": (2.0, 3.0, 7.0, 8.0),
        "15-25C": (15.0, 16.0, 24.0, 25.0),
        "dry-ice": (None, None, -65.0, -60.0),
        "lN2-vapour": (None, None, -160.0, -150.0),
    }
    assert FRIDGE.max_single_excursion == 30 * MINUTE and FRIDGE.default_interval == 5 * MINUTE
    assert json.loads(json.dumps(FRIDGE.as_rule()))["stability_budget_minutes"] == 120


def test_a_profile_copied_into_a_rule_reads_back_as_the_same_profile() -> None:
    for profile in PROFILES.values():
        assert Profile.from_rule(json.loads(json.dumps(profile.as_rule()))) == profile

    with pytest.raises(ValueError, match="profile '2-8C': pre_low .9. must be below pre_high .7."):
        Profile.from_rule(FRIDGE.as_rule() | {"pre_low": 9.0})


GOOD = """
[profiles."custom"]
title = "Custom"
low = 2.0
high = 8.0
max_single_excursion_minutes = 30
max_cumulative_minutes = 60
stability_budget_minutes = 120
gap_intervals = 3
default_interval_minutes = 5
"""


def test_a_configured_profiles_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(GOOD)

    [custom] = load_profiles(path).values()

    assert (custom.name, custom.low, custom.high, custom.pre_high) == ("custom", 2.0, 8.0, None)


TITLE = 'title = "Custom"'


@pytest.mark.parametrize(("old", "new", "error"), [
    (TITLE, TITLE + "\nhihg = 9.0", "unknown key(s) hihg"),
    (TITLE, TITLE + "\npre_high = 8.5", "pre_high (8.5) must be below high (8)"),
    (TITLE, TITLE + "\npre_low = 1.0", "low (2) must be below pre_low (1)"),
    ("high = 8.0", "high = 2.0", "low (2) must be below high (2)"),
    ("max_cumulative_minutes = 60", "max_cumulative_minutes = -1", "max_cumulative_minutes must not be"),
    ("default_interval_minutes = 5", "default_interval_minutes = 0", "default_interval_minutes must be more"),
    ("gap_intervals = 3", "gap_intervals = 0.5", "gap_intervals must be a whole number"),
    (TITLE, "", "missing key(s) title"),
])
def test_a_bad_profiles_file_is_refused_naming_the_profile_and_key(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(GOOD.replace(old, new))

    with pytest.raises(ValueError) as refused:
        load_profiles(path)

    assert str(refused.value).startswith(f"{path}: profile 'custom': {error}")
