"""One logger's readings judged against a temperature profile, in one streaming pass.

`Evaluator` takes the readings of one logger in time order (as `normalise` yields them)
and keeps constant state besides the excursions, pre-alarm runs and gaps it finds.

Conventions:
- Window: readings with window_start <= time <= window_end are evaluated (an open end is
  None); the others are only counted, before and after, with their first and last times.
- Sample and hold: the time from one reading to the next belongs to the first one's state
  (in range, out of range). The last reading holds nothing.
- Data gap: two consecutive readings more than gap_intervals x interval apart (interval:
  the logger's if given, else the profile's default). The time between them is neither in
  nor out of range. When the window's ends are given, a first reading more than that
  after window_start, or a last reading more than that before window_end, leaves a gap at
  that edge too (the logger started late or stopped early): give window_end only once
  the shipment has arrived.
- Limits: a reading exactly at a limit is within it. An excursion is a run of consecutive
  readings beyond the same limit; it starts at its first reading and ends at the first
  reading back within limits, so its duration is the time held out of range. A run still
  out at the last reading is `ongoing` and ends there; a data gap ends a run at its last
  reading before the gap. Pre-alarm runs are the same for readings within the limits but
  beyond the pre-alarm limits.
- Allowances: a duration equal to what is allowed is within it; only longer is a breach.
  This holds for single excursions, cumulative time out of range, pre-alarm runs (allowed:
  one interval), data gaps and the stability budget.
- Mean kinetic temperature weighs every reading equally (it is not time-weighted):
  MKT = (dH/R) / -ln(mean(exp(-dH / (R T)))) with T in kelvin, dH = 83.144 kJ/mol,
  R = 8.3144 J/(mol K).
- Breach keys name the code, the logger and the start of what was breached, so the same
  data evaluated again (or an excursion that has grown since) gives the same key.
- Daily summaries (`judge_days`) hold no readings: each day with time in alarm, or with an
  extreme beyond the profile's limits, is judged as an excursion of that day (see there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from coldchain.model import DaySummary, Reading
from coldchain.profiles import Profile

ACTIVATION_ENERGY = 83.144  # kJ/mol, the conventional dH for mean kinetic temperature
GAS_CONSTANT = 8.3144e-3  # kJ/(mol K)
ZERO_CELSIUS = 273.15  # kelvin
_DH_OVER_R = ACTIVATION_ENERGY / GAS_CONSTANT  # 10,000 K


@dataclass(frozen=True, slots=True)
class Excursion:
    """A run of readings beyond one limit: kind "high" or "low" (outside the alarm limits)
    or "pre_high" / "pre_low" (inside them, beyond the pre-alarm limits)."""

    kind: str
    limit: float
    start: datetime
    end: datetime
    ongoing: bool  # still beyond the limit at the last evaluated reading
    peak: float  # the most extreme value of the run
    peak_at: datetime
    first_line: int
    last_line: int

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch with no readings, longer than the profile allows."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class OutsideWindow:
    """Readings on one side of the window: counted, not evaluated."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None


@dataclass(frozen=True, slots=True)
class Breach:
    """What the app raises an alarm for. `rule` is a JSON-able copy of the rule that fired;
    `key` is the same every time the same breach is found again."""

    code: str  # excursion_single, excursion_cumulative, pre_alarm, data_gap, no_readings
    severity: str  # critical, major, minor
    message: str
    rule: dict[str, Any]
    start: datetime | None
    end: datetime | None
    ongoing: bool
    excursion: Excursion | None
    key: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything found in one logger's readings for one window."""

    logger_id: str | None
    count: int  # readings evaluated (inside the window)
    first: datetime | None
    last: datetime | None
    min_celsius: float | None
    min_at: datetime | None
    max_celsius: float | None
    max_at: datetime | None
    mean_celsius: float | None
    mkt_celsius: float | None
    time_in_range: timedelta
    time_out_of_range: timedelta  # cumulative, the sum of the excursions' durations
    longest_gap: timedelta
    excursions: list[Excursion]
    pre_alarms: list[Excursion]
    gaps: list[Gap]
    before_window: OutsideWindow
    after_window: OutsideWindow
    breaches: list[Breach]


@dataclass(frozen=True, slots=True)
class Budget:
    """A case's stability budget: time out of range allowed across all its legs."""

    total: timedelta
    used: timedelta
    left: timedelta
    exhausted: bool  # more used than allowed


def stability_budget(profile: Profile, used_per_leg: Iterable[timedelta]) -> Budget:
    """Sum the time out of range of every leg of a case against the profile's budget."""
    used = sum(used_per_leg, timedelta(0))
    total = profile.stability_budget
    return Budget(total=total, used=used, left=max(total - used, timedelta(0)), exhausted=used > total)


@dataclass(slots=True)
class _Run:
    kind: str
    limit: float
    start: datetime
    peak: float
    peak_at: datetime
    first_line: int
    last_line: int
    extreme: int  # +1 when higher values are worse, -1 when lower ones are

    @classmethod
    def begin(cls, reading: Reading, kind: str, limit: float) -> _Run:
        extreme = 1 if kind.endswith("high") else -1
        return cls(kind, limit, reading.at, reading.celsius, reading.at, reading.line, reading.line, extreme)

    def extend(self, reading: Reading) -> None:
        if (reading.celsius - self.peak) * self.extreme > 0:
            self.peak, self.peak_at = reading.celsius, reading.at
        self.last_line = reading.line

    def close(self, end: datetime, *, ongoing: bool) -> Excursion:
        return Excursion(self.kind, self.limit, self.start, end, ongoing, self.peak, self.peak_at,
                         self.first_line, self.last_line)


class Evaluator:
    """Feed the readings of one logger in time order, then ask for the result (as often as
    wanted: more readings may be fed after it)."""

    def __init__(
        self,
        profile: Profile,
        *,
        window_start: datetime | None,
        window_end: datetime | None,
        interval: timedelta | None,
        logger_id: str | None = None,
    ) -> None:
        if window_start is not None and window_end is not None and window_end < window_start:
            raise ValueError("the window ends before it starts")
        if interval is not None and interval <= timedelta(0):
            raise ValueError("the logging interval must be positive")
        self.profile = profile
        self.window_start = window_start
        self.window_end = window_end
        self.interval = interval or profile.default_interval
        self.gap_limit = self.interval * profile.gap_intervals
        self._logger_id = logger_id  # named in breach keys; taken from the readings if None
        self._last_fed: Reading | None = None
        self._before = OutsideWindow()
        self._after = OutsideWindow()
        self._previous: Reading | None = None  # the last reading evaluated
        self._first: Reading | None = None
        self._count = 0
        self._min: Reading | None = None
        self._max: Reading | None = None
        self._sum = 0.0
        self._boltzmann_sum = 0.0  # sum of exp(-dH / (R T)) for the mean kinetic temperature
        self._in_range = timedelta(0)
        self._out_of_range = timedelta(0)
        self._excursions: list[Excursion] = []
        self._pre_alarms: list[Excursion] = []
        self._gaps: list[Gap] = []
        self._run: _Run | None = None  # the excursion the previous reading is part of
        self._pre_run: _Run | None = None

    def feed(self, reading: Reading) -> None:
        """Take the next reading. Raises ValueError for a reading of another logger, one not
        later than the last, or a value that cannot be a temperature."""
        self._check(reading)
        self._last_fed = reading
        if self.window_start is not None and reading.at < self.window_start:
            self._before = _counted(self._before, reading.at)
            return
        if self.window_end is not None and reading.at > self.window_end:
            self._after = _counted(self._after, reading.at)
            return
        self._hold(reading)
        beyond = self._beyond_limit(reading)
        self._run = self._follow(self._run, self._excursions, reading, beyond)
        pre_beyond = None if beyond is not None else self._beyond_pre_limit(reading)
        self._pre_run = self._follow(self._pre_run, self._pre_alarms, reading, pre_beyond)
        self._summarise(reading)
        self._previous = reading

    def result(self) -> Evaluation:
        """What the readings fed so far show."""
        excursions = self._with_open(self._excursions, self._run)
        pre_alarms = self._with_open(self._pre_alarms, self._pre_run)
        gaps = list(self._gaps)
        last = self._previous
        if last is not None and self.window_end is not None and self.window_end - last.at > self.gap_limit:
            gaps.append(Gap(last.at, self.window_end))
        evaluation = Evaluation(
            logger_id=self._logger_id,
            count=self._count,
            first=self._first.at if self._first else None,
            last=last.at if last else None,
            min_celsius=self._min.celsius if self._min else None,
            min_at=self._min.at if self._min else None,
            max_celsius=self._max.celsius if self._max else None,
            max_at=self._max.at if self._max else None,
            mean_celsius=self._sum / self._count if self._count else None,
            mkt_celsius=self._mkt(),
            time_in_range=self._in_range,
            time_out_of_range=self._out_of_range,
            longest_gap=max((gap.duration for gap in gaps), default=timedelta(0)),
            excursions=excursions,
            pre_alarms=pre_alarms,
            gaps=gaps,
            before_window=self._before,
            after_window=self._after,
            breaches=[],
        )
        return replace(evaluation, breaches=self._breaches(evaluation))

    # ------------------------------------------------------------------ feeding

    def _check(self, reading: Reading) -> None:
        if self._logger_id is None:
            self._logger_id = reading.logger_id
        elif reading.logger_id != self._logger_id:
            raise ValueError(f"line {reading.line}: logger {reading.logger_id!r} is not {self._logger_id!r}")
        if self._last_fed is not None and reading.at <= self._last_fed.at:
            raise ValueError(f"line {reading.line}: readings must be fed in time order, once each")
        if not math.isfinite(reading.celsius) or reading.celsius <= -ZERO_CELSIUS:
            raise ValueError(f"line {reading.line}: {reading.celsius} °C is not a temperature")

    def _hold(self, reading: Reading) -> None:
        """Attribute the time since the previous reading to its state, or record a gap."""
        previous = self._previous
        if previous is None:
            if self.window_start is not None and reading.at - self.window_start > self.gap_limit:
                self._gaps.append(Gap(self.window_start, reading.at))
            return
        held = reading.at - previous.at
        if held > self.gap_limit:
            self._gaps.append(Gap(previous.at, reading.at))
            # Nothing is known across a gap: runs end at their last reading before it.
            if self._run is not None:
                self._excursions.append(self._run.close(previous.at, ongoing=False))
                self._run = None
            if self._pre_run is not None:
                self._pre_alarms.append(self._pre_run.close(previous.at, ongoing=False))
                self._pre_run = None
        elif self._run is not None:
            self._out_of_range += held
        else:
            self._in_range += held

    @staticmethod
    def _follow(
        run: _Run | None, found: list[Excursion], reading: Reading, beyond: tuple[str, float] | None
    ) -> _Run | None:
        """The run `reading` belongs to after it: the same one extended, a new one, or none."""
        if run is not None and (beyond is None or beyond[0] != run.kind):
            found.append(run.close(reading.at, ongoing=False))
            run = None
        if beyond is None:
            return None
        if run is None:
            return _Run.begin(reading, *beyond)
        run.extend(reading)
        return run

    def _beyond_limit(self, reading: Reading) -> tuple[str, float] | None:
        high, low = self.profile.high, self.profile.low
        if high is not None and reading.celsius > high:
            return ("high", high)
        if low is not None and reading.celsius < low:
            return ("low", low)
        return None

    def _beyond_pre_limit(self, reading: Reading) -> tuple[str, float] | None:
        """Beyond a pre-alarm limit (for a reading within the alarm limits)."""
        high, low = self.profile.pre_high, self.profile.pre_low
        if high is not None and reading.celsius > high:
            return ("pre_high", high)
        if low is not None and reading.celsius < low:
            return ("pre_low", low)
        return None

    def _summarise(self, reading: Reading) -> None:
        self._count += 1
        self._first = self._first or reading
        if self._min is None or reading.celsius < self._min.celsius:
            self._min = reading
        if self._max is None or reading.celsius > self._max.celsius:
            self._max = reading
        self._sum += reading.celsius
        self._boltzmann_sum += math.exp(-_DH_OVER_R / (reading.celsius + ZERO_CELSIUS))

    # ------------------------------------------------------------------ results

    def _with_open(self, closed: list[Excursion], run: _Run | None) -> list[Excursion]:
        if run is None or self._previous is None:
            return list(closed)
        return [*closed, run.close(self._previous.at, ongoing=True)]

    def _mkt(self) -> float | None:
        if not self._count:
            return None
        return _DH_OVER_R / -math.log(self._boltzmann_sum / self._count) - ZERO_CELSIUS

    def _breaches(self, evaluation: Evaluation) -> list[Breach]:
        profile = self.profile
        breaches = []
        if not evaluation.count:
            breaches.append(self._breach(
                "no_readings", "major", f"No readings{self._window_text()}", None,
                start=self.window_start, end=self.window_end, key_at=self.window_start,
            ))
        for excursion in evaluation.excursions:
            if excursion.duration > profile.max_single_excursion:
                breaches.append(self._breach(
                    "excursion_single", "critical",
                    _run_text(excursion, "limit", profile.max_single_excursion),
                    excursion.limit, "°C",
                    start=excursion.start, end=excursion.end, ongoing=excursion.ongoing, excursion=excursion,
                    key_at=excursion.start,
                ))
        if evaluation.time_out_of_range > profile.max_cumulative:
            first, final = evaluation.excursions[0], evaluation.excursions[-1]
            breaches.append(self._breach(
                "excursion_cumulative", "major",
                f"Out of range for {_span(evaluation.time_out_of_range)} in total in "
                f"{len(evaluation.excursions)} excursion(s) from {_when(first.start)} "
                f"(allowed {_span(profile.max_cumulative)})",
                _minutes(profile.max_cumulative), "min",
                # Keyed by the window, not the first excursion: earlier data may arrive later.
                start=first.start, end=final.end, ongoing=final.ongoing, key_at=self.window_start,
            ))
        for run in evaluation.pre_alarms:
            if run.duration > self.interval:
                breaches.append(self._breach(
                    "pre_alarm", "minor", _run_text(run, "pre-alarm limit", self.interval),
                    run.limit, "°C", start=run.start, end=run.end, ongoing=run.ongoing, excursion=run,
                    key_at=run.start,
                ))
        for gap in evaluation.gaps:
            breaches.append(self._breach(
                "data_gap", "major",
                f"No readings for {_span(gap.duration)} from {_when(gap.start)} to {_when(gap.end)} "
                f"(allowed {_span(self.gap_limit)}: {profile.gap_intervals} × the "
                f"{_span(self.interval)} interval)",
                _minutes(self.gap_limit), "min", start=gap.start, end=gap.end, key_at=gap.start,
            ))
        return breaches

    def _breach(
        self,
        code: str,
        severity: str,
        message: str,
        limit: float | None,
        unit: str | None = None,
        *,
        start: datetime | None,
        end: datetime | None,
        ongoing: bool = False,
        excursion: Excursion | None = None,
        key_at: datetime | None,
    ) -> Breach:
        """A breach keyed by code, logger and `key_at`: a time that stays the same when the
        same data is evaluated again or the breach grows."""
        key = f"{code}:{self._logger_id or '-'}:{key_at.isoformat() if key_at else '-'}"
        rule = self.profile.as_rule() | {
            "rule": f"coldchain.{code}",
            "limit": limit,
            "limit_unit": unit,
            "interval_minutes": _minutes(self.interval),
        }
        return Breach(code, severity, message, rule, start, end, ongoing, excursion, key)

    def _window_text(self) -> str:
        logger = f" from logger {self._logger_id}" if self._logger_id else ""
        if self.window_start and self.window_end:
            return f"{logger} between {_when(self.window_start)} and {_when(self.window_end)}"
        if self.window_start:
            return f"{logger} since {_when(self.window_start)}"
        if self.window_end:
            return f"{logger} until {_when(self.window_end)}"
        return logger


def _counted(side: OutsideWindow, at: datetime) -> OutsideWindow:
    return OutsideWindow(side.count + 1, side.first or at, at)


def _run_text(run: Excursion, what: str, allowed: timedelta) -> str:
    side = "above" if run.kind.endswith("high") else "below"
    still = f", still {side} at the last reading" if run.ongoing else ""
    return (
        f"Up to {abs(run.peak - run.limit):.1f} °C {side} the {run.limit:.1f} °C {what} "
        f"(peak {run.peak:.1f} °C) for {_span(run.duration)} from {_when(run.start)}{still} "
        f"(allowed {_span(allowed)})"
    )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(duration: timedelta) -> str:
    """'2 h 5 min', '30 min 1 s', '0 s'."""
    seconds = round(duration.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")) if n]
    return " ".join(parts) or "0 s"


def _minutes(duration: timedelta) -> float:
    return duration / timedelta(minutes=1)


# ------------------------------------------------------------------ daily summaries

_BUT_A_SUMMARY = ("a daily summary gives the day's total, so it cannot tell one long excursion from "
                  "several short ones")


@dataclass(frozen=True, slots=True)
class DayJudgement:
    """A daily-summary report judged against a profile: the days inside the window (the
    others only listed), those in alarm, the summed time out of range, and the breaches."""

    logger_id: str | None
    days: list[DaySummary]  # judged: inside the window
    before_window: list[DaySummary]
    after_window: list[DaySummary]
    alarm_days: list[DaySummary]
    time_out_of_range: timedelta  # the minutes the file states for the judged days, summed
    min_celsius: float | None
    max_celsius: float | None
    breaches: list[Breach]


def judge_days(days: Iterable[DaySummary], profile: Profile, *, logger_id: str | None,
               first_day: date | None = None, last_day: date | None = None) -> DayJudgement:
    """Judge a logger's daily summaries. Days before `first_day` or after `last_day` (the
    window's dates, in the logger's local time) are listed, not judged.

    A day is an excursion (code excursion_single, keyed by logger and day) when the file
    states time in alarm for it, or when its minimum or maximum lies beyond the profile's
    limits. Severity follows the single-excursion rule as far as a summary allows: more
    minutes than one excursion may last is critical; so is an excursion whose minutes are
    unknown (the file states none, or states none while the extremes say otherwise, or its
    own limits are wider than the profile's), and a run of alarm days on consecutive dates
    whose minutes together exceed the allowance (an excursion may go on over midnight).
    Any other alarm day is minor: within the allowance, it counts toward the cumulative
    time. The stated minutes of the judged days are summed into `time_out_of_range`
    (excursion_cumulative when over the profile's allowance, and the stability budget)."""
    judged, before, after = [], [], []
    for day in days:
        if first_day is not None and day.day < first_day:
            before.append(day)
        elif last_day is not None and day.day > last_day:
            after.append(day)
        else:
            judged.append(day)
    judged.sort(key=lambda day: day.day)
    known = {day.day: _known_minutes(day, profile) for day in judged if _in_alarm(day, profile)}
    alarm_days = [day for day in judged if day.day in known]
    breaches = []
    if not judged:
        breaches.append(_day_breach(profile, "no_readings", "major", logger_id, "days",
                                    f"No day of the daily summary{_of(logger_id)} falls within the "
                                    "shipment's window", {}))
    allowed = _minutes(profile.max_single_excursion)
    for day in alarm_days:
        minutes = known[day.day]
        run = _run_minutes(day.day, known)
        if minutes is None or minutes > allowed:
            severity = "critical"
        elif run is None or run > allowed:
            severity = "critical"
        else:
            severity = "minor"
        breaches.append(_day_breach(
            profile, "excursion_single", severity, logger_id, day.day.isoformat(),
            _day_text(day, minutes, run, profile),
            {"day": day.day.isoformat(), "minutes": minutes, "line": day.line,
             "limit": profile.high if _side(day, profile) != "below" else profile.low, "limit_unit": "°C"}))
    total = timedelta(minutes=sum(minutes or 0.0 for minutes in known.values()))
    if total > profile.max_cumulative:
        breaches.append(_day_breach(
            profile, "excursion_cumulative", "major", logger_id, "days",
            f"Out of range for {_span(total)} in total on {len(alarm_days)} day(s) from "
            f"{alarm_days[0].day.isoformat()} (allowed {_span(profile.max_cumulative)}; {_BUT_A_SUMMARY})",
            {"limit": _minutes(profile.max_cumulative), "limit_unit": "min"}))
    lows = [day.min_c for day in judged if day.min_c is not None]
    highs = [day.max_c for day in judged if day.max_c is not None]
    return DayJudgement(logger_id, judged, before, after, alarm_days, total, min(lows, default=None),
                        max(highs, default=None), breaches)


def _beyond(day: DaySummary, profile: Profile) -> tuple[bool, bool]:
    high = profile.high is not None and day.max_c is not None and day.max_c > profile.high
    low = profile.low is not None and day.min_c is not None and day.min_c < profile.low
    return high, low


def _in_alarm(day: DaySummary, profile: Profile) -> bool:
    return bool(day.minutes_out) or any(_beyond(day, profile))


def _known_minutes(day: DaySummary, profile: Profile) -> float | None:
    """The day's minutes out of the profile's range, where the file's figure can be taken for
    them; None where it cannot."""
    stated = day.minutes_out
    high, low = _beyond(day, profile)
    if not (high or low):
        return stated
    # The file's limit on a side the day went beyond must not be wider than the profile's:
    # minutes above +10 °C undercount minutes above +8 °C. A wider limit on the other side
    # counts nothing that day (Fridge-tags alarm below -0.5 °C for a 2-8 °C product).
    wider_high = day.high_limit is not None and profile.high is not None and day.high_limit > profile.high
    wider_low = day.low_limit is not None and profile.low is not None and day.low_limit < profile.low
    return None if not stated or (high and wider_high) or (low and wider_low) else stated


def _run_minutes(day: date, known: dict[date, float | None]) -> float | None:
    """The minutes of the alarm days on consecutive dates around `day` (None: one unknown)."""
    first = last = day
    while first - timedelta(days=1) in known:
        first -= timedelta(days=1)
    while last + timedelta(days=1) in known:
        last += timedelta(days=1)
    total = 0.0
    for n in range((last - first).days + 1):
        minutes = known[first + timedelta(days=n)]
        if minutes is None:
            return None
        total += minutes
    return total


def _side(day: DaySummary, profile: Profile) -> str:
    high, low = _beyond(day, profile)
    above = high or bool(day.minutes_above)
    below = low or bool(day.minutes_below)
    return "both" if above and below else "above" if above else "below" if below else "alarm"


def _day_text(day: DaySummary, minutes: float | None, run: float | None, profile: Profile) -> str:
    side = _side(day, profile)
    limits = {"above": f"above {_limit(profile.high)}", "below": f"below {_limit(profile.low)}",
              "both": f"outside {_limit(profile.low)} to {_limit(profile.high)}", "alarm": "in alarm"}[side]
    extreme = {"above": f"up to {_temp(day.max_c)}", "below": f"down to {_temp(day.min_c)}",
               "both": f"from {_temp(day.min_c)} to {_temp(day.max_c)}",
               "alarm": f"from {_temp(day.min_c)} to {_temp(day.max_c)}"}[side]
    allowed = _span(profile.max_single_excursion)
    if minutes is None:
        stated = day.minutes_out
        how_long = ("for a time the file does not state" if not stated else
                    f"the file states {stated:g} min in alarm against its own, wider limits")
        return (f"{day.day.isoformat()}: {limits}, {extreme}, {how_long} (line {day.line}); how long it "
                f"lasted is unknown, so it may exceed the {allowed} one excursion may last")
    text = f"{day.day.isoformat()}: {minutes:g} min {limits}, {extreme} (line {day.line})"
    if minutes > _minutes(profile.max_single_excursion):
        return f"{text}: more than the {allowed} one excursion may last ({_BUT_A_SUMMARY})"
    if run is None or run > minutes:
        return (f"{text}: the days next to it are in alarm too, and an excursion may go on over midnight; "
                f"together more than the {allowed} one excursion may last ({_BUT_A_SUMMARY})")
    return f"{text}: within the {allowed} one excursion may last ({_BUT_A_SUMMARY}; it counts toward the " \
           "cumulative time)"


def _day_breach(profile: Profile, code: str, severity: str, logger_id: str | None, key_at: str,
                message: str, extra: dict[str, Any]) -> Breach:
    rule = profile.as_rule() | {"rule": f"coldchain.{code}", "limit": None, "limit_unit": None,
                                "basis": "daily summary"} | extra
    key = f"{code}:{logger_id or '-'}:{key_at}"
    return Breach(code, severity, message, rule, None, None, False, None, key)


def _of(logger_id: str | None) -> str:
    return f" from logger {logger_id}" if logger_id else ""


def _limit(value: float | None) -> str:
    return "the limit" if value is None else f"{value:.1f} °C"


def _temp(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} °C"
