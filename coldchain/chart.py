"""Temperature charts: thinning that never hides an excursion, and a standalone SVG.

`thin` keeps, for each time bucket, the first, last, lowest and highest reading, so a
spike of one reading survives any amount of thinning. `svg` draws the profile's limits,
the excursions and gaps found by the evaluation, and one line per logger, with times in
the zone of the person looking. The output depends only on the arguments."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from xml.sax.saxutils import escape

from coldchain.profiles import Profile

Point = tuple[datetime, float]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
_SERIES_COLOURS = ("#1f5fbf", "#7b3fa0", "#1a8a5a", "#8c564b", "#4b4b4b", "#0f8fa8")
_LIMIT = "#d62728"
_PRE_LIMIT = "#e07b00"
_LIMIT_STROKE = f'stroke="{_LIMIT}" stroke-width="1.5"'
_PRE_LIMIT_STROKE = f'stroke="{_PRE_LIMIT}" stroke-dasharray="6 4"'
_BAND_FILL = 'fill="#2ca02c" fill-opacity="0.10"'
_EXCURSION_FILL = 'fill="#d62728" fill-opacity="0.18"'
_GAP_FILL = 'fill="url(#coldchain-gap-hatch)"'
_DAY = 86400


@dataclass(slots=True)
class Bucket:
    """The readings of one time bucket, reduced to its first, last, lowest and highest."""

    start: datetime
    end: datetime
    first: Point
    last: Point
    low: Point
    high: Point
    count: int = 1

    def add(self, point: Point) -> None:
        """Take the next point (points arrive in time order)."""
        self.count += 1
        self.last = point
        if point[1] < self.low[1]:
            self.low = point
        if point[1] > self.high[1]:
            self.high = point

    def points(self) -> list[Point]:
        """The kept points, each once, in time order."""
        return sorted(dict.fromkeys((self.first, self.low, self.high, self.last)))


def thin(points: Iterable[Point], *, start: datetime, end: datetime, buckets: int) -> list[Bucket]:
    """Reduce time-ordered `points` between `start` and `end` (others are left out) to at
    most `buckets` equal time buckets, in one pass with memory for the buckets only. Only
    buckets with points are returned, in time order."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    span = max(end - start, timedelta(microseconds=1))
    span_us = _microseconds(span)
    found: dict[int, Bucket] = {}
    for point in points:
        at = point[0]
        if at < start or at > end:
            continue
        index = min(_microseconds(at - start) * buckets // span_us, buckets - 1)
        bucket = found.get(index)
        if bucket is None:
            found[index] = Bucket(start + span * index / buckets, start + span * (index + 1) / buckets,
                                  point, point, point, point)
        else:
            bucket.add(point)
    return [found[index] for index in sorted(found)]


def series_points(buckets: Iterable[Bucket]) -> list[Point]:
    """The points `thin` kept, flattened in time order: what to draw."""
    return [point for bucket in buckets for point in bucket.points()]


def svg(
    series: list[tuple[str, list[Point]]],
    *,
    profile: Profile,
    excursions: list[tuple[datetime, datetime]],
    gaps: list[tuple[datetime, datetime]],
    window: tuple[datetime, datetime],
    zone: tzinfo,
    zone_label: str | None = None,
    width: int = 900,
    height: int = 320,
    title: str,
) -> str:
    """A standalone SVG document: one line per (name, time-ordered points) series over
    `window`, the in-range band, limits (solid) and pre-alarm limits (dashed), excursions
    (red bands) and data gaps (hatched), time axis in `zone`, named by `zone_label` (by
    default the zone's name and its abbreviation at the window's start)."""
    start, end = window
    if end <= start:
        start, end = start - timedelta(minutes=30), end + timedelta(minutes=30)
    label = zone_label or _zone_name(zone, start)
    shown = [(name, [p for p in points if start <= p[0] <= end]) for name, points in series]
    values = [value for _, points in shown for _, value in points]
    frame = _Frame(width, height, start, end, _value_range(values, profile))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(_summary(title, shown, profile, excursions, gaps, start, end, zone, label))}</desc>",
        '<defs><pattern id="coldchain-gap-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eeeeee"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#999999" stroke-width="2"/></pattern></defs>',
        f'<text x="{_n(frame.left)}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{_n(frame.left)}" y="{_n(frame.top)}" width="{_n(frame.right - frame.left)}" '
        f'height="{_n(frame.bottom - frame.top)}" fill="#ffffff" stroke="#bbbbbb"/>',
        *_band(frame, profile),
        *_spans(frame, excursions, f'class="excursion" {_EXCURSION_FILL}', 2.0),
        *_spans(frame, gaps, f'class="gap" {_GAP_FILL}', 1.0),
        *_value_ticks(frame),
        *_time_ticks(frame, zone, label),
        *_limit_lines(frame, profile),
        *_lines(frame, shown),
        *_legend(frame, shown, profile, bool(excursions), bool(gaps)),
    ]
    if not values:
        middle = f'x="{_n((frame.left + frame.right) / 2)}" y="{_n((frame.top + frame.bottom) / 2)}"'
        parts.append(f'<text {middle} text-anchor="middle" font-size="14" fill="#666666">No readings</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True, slots=True)
class _Frame:
    """The plot area and its scales."""

    width: int
    height: int
    start: datetime
    end: datetime
    values: tuple[float, float]  # the value axis, bottom to top
    left: float = 56.0
    top: float = 46.0

    @property
    def right(self) -> float:
        return self.width - 16.0

    @property
    def bottom(self) -> float:
        return self.height - 48.0

    def x(self, at: datetime) -> float:
        share = (at - self.start) / (self.end - self.start)
        return self.left + min(max(share, 0.0), 1.0) * (self.right - self.left)

    def y(self, celsius: float) -> float:
        low, high = self.values
        share = (celsius - low) / (high - low)
        return self.bottom - min(max(share, 0.0), 1.0) * (self.bottom - self.top)


def _value_range(values: list[float], profile: Profile) -> tuple[float, float]:
    """From below the lowest to above the highest of the data and the limits, on ticks."""
    limits = [v for v in (profile.low, profile.high, profile.pre_low, profile.pre_high) if v is not None]
    low, high = min(values + limits), max(values + limits)
    pad = max((high - low) * 0.08, 0.5)
    low, high = low - pad, high + pad
    step = _value_step(low, high)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _value_step(low: float, high: float) -> float:
    raw = (high - low) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _band(frame: _Frame, profile: Profile) -> list[str]:
    top = frame.top if profile.high is None else frame.y(profile.high)
    bottom = frame.bottom if profile.low is None else frame.y(profile.low)
    box = f'x="{_n(frame.left)}" y="{_n(top)}" width="{_n(frame.right - frame.left)}"'
    box += f' height="{_n(bottom - top)}"'
    return [f'<rect class="in-range" {box} {_BAND_FILL}/>']


def _spans(frame: _Frame, spans: list[tuple[datetime, datetime]], style: str, least: float) -> list[str]:
    """Vertical bands over the plot, at least `least` px wide so none can vanish."""
    out = []
    for start, end in spans:
        if end < frame.start or start > frame.end:
            continue
        x1, x2 = frame.x(start), frame.x(end)
        if x2 - x1 < least:
            x1 = min(max((x1 + x2 - least) / 2, frame.left), frame.right - least)
            x2 = x1 + least
        out.append(f'<rect {style} x="{_n(x1)}" y="{_n(frame.top)}" width="{_n(x2 - x1)}" '
                   f'height="{_n(frame.bottom - frame.top)}"/>')
    return out


def _value_ticks(frame: _Frame) -> list[str]:
    low, high = frame.values
    step = _value_step(low, high)
    decimals = max(0, -math.floor(math.log10(step)))
    out = [f'<text x="{_n(frame.left - 6)}" y="{_n(frame.top - 6)}" text-anchor="end">°C</text>']
    for i in range(round((high - low) / step) + 1):
        value = low + i * step
        value = 0.0 if abs(value) < step / 2 else value  # not "-0" from rounding
        y = _n(frame.y(value))
        text = f"{value:.{decimals}f}"
        out.append(f'<line class="tick" x1="{_n(frame.left)}" x2="{_n(frame.right)}" y1="{y}" y2="{y}" '
                   'stroke="#e4e4e4"/>')
        out.append(f'<text x="{_n(frame.left - 6)}" y="{y}" dy="4" text-anchor="end">{text}</text>')
    return out


def _time_ticks(frame: _Frame, zone: tzinfo, zone_label: str) -> list[str]:
    """Ticks on round local times of `zone`, the date under the first tick of each day."""
    span = (frame.end - frame.start).total_seconds()
    most = max(2, int((frame.right - frame.left) // 90))
    step = next((s for s in _TIME_STEPS if span / s <= most), math.ceil(span / most / _DAY) * _DAY)
    local = frame.start.astimezone(zone)
    since_midnight = (local - local.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    align = min(step, _DAY)
    tick = frame.start + timedelta(seconds=math.ceil(since_midnight / align) * align - since_midnight)
    out = []
    shown_date = None
    while tick <= frame.end:
        x = _n(frame.x(tick))
        anchor = "end" if frame.x(tick) > frame.right - 32 else "middle"  # keep the date inside
        local = tick.astimezone(zone)
        out.append(f'<line class="tick" x1="{x}" x2="{x}" y1="{_n(frame.top)}" y2="{_n(frame.bottom + 4)}" '
                   'stroke="#e4e4e4"/>')
        out.append(f'<text class="time" x="{x}" y="{_n(frame.bottom + 16)}" text-anchor="{anchor}">'
                   f"{local:%H:%M}</text>")
        if local.date() != shown_date:
            shown_date = local.date()
            out.append(f'<text class="date" x="{x}" y="{_n(frame.bottom + 29)}" text-anchor="{anchor}">'
                       f"{local.day} {_MONTHS[local.month - 1]} {local.year}</text>")
        tick += timedelta(seconds=step)
    out.append(f'<text x="{_n(frame.right)}" y="{frame.height - 4}" text-anchor="end" fill="#444444">'
               f"Time in {escape(zone_label)}</text>")
    return out


def _limit_lines(frame: _Frame, profile: Profile) -> list[str]:
    out = []
    # The low limit's label goes under its line, so it does not collide with the pre-alarm's.
    for kind, value, words, colour, style, dy in (
        ("pre-limit", profile.pre_low, "pre-alarm", _PRE_LIMIT, _PRE_LIMIT_STROKE, -3),
        ("pre-limit", profile.pre_high, "pre-alarm", _PRE_LIMIT, _PRE_LIMIT_STROKE, -3),
        ("limit", profile.low, "limit", _LIMIT, _LIMIT_STROKE, 11),
        ("limit", profile.high, "limit", _LIMIT, _LIMIT_STROKE, -3),
    ):
        if value is None:
            continue
        y = _n(frame.y(value))
        across = f'x1="{_n(frame.left)}" x2="{_n(frame.right)}" y1="{y}" y2="{y}"'
        out.append(f'<line class="{kind}" {across} {style}/>')
        out.append(f'<text x="{_n(frame.right - 4)}" y="{y}" dy="{dy}" text-anchor="end" font-size="10" '
                   f'fill="{colour}">{words} {value:g} °C</text>')
    return out


def _lines(frame: _Frame, series: list[tuple[str, list[Point]]]) -> list[str]:
    out = []
    for i, (name, points) in enumerate(series):
        colour = _SERIES_COLOURS[i % len(_SERIES_COLOURS)]
        xy = [(frame.x(at), frame.y(value)) for at, value in points]
        if len(xy) == 1:
            centre = f'cx="{_n(xy[0][0])}" cy="{_n(xy[0][1])}"'
            out.append(f'<circle class="series" {centre} r="2.5" fill="{colour}">'
                       f"<title>{escape(name)}</title></circle>")
        elif xy:
            coordinates = " ".join(f"{_n(x)},{_n(y)}" for x, y in xy)
            out.append(f'<polyline class="series" points="{coordinates}" fill="none" stroke="{colour}" '
                       f'stroke-width="1.5" stroke-linejoin="round"><title>{escape(name)}</title></polyline>')
    return out


def _legend(frame: _Frame, series: list[tuple[str, list[Point]]], profile: Profile,
            excursions: bool, gaps: bool) -> list[str]:
    """One row above the plot; widths are estimated, which is enough for short names."""
    line = '<line x1="0" x2="16" y1="-4" y2="-4" {}/>'.format
    box = '<rect y="-9" width="16" height="10" {}/>'.format
    entries = [(line(f'stroke="{_SERIES_COLOURS[i % len(_SERIES_COLOURS)]}" stroke-width="2"'), name)
               for i, (name, _) in enumerate(series)]
    entries.append((box(f'{_BAND_FILL} stroke="#cccccc"'), "in range"))
    entries.append((line(_LIMIT_STROKE), "limit"))
    if profile.pre_low is not None or profile.pre_high is not None:
        entries.append((line(_PRE_LIMIT_STROKE), "pre-alarm"))
    if excursions:
        entries.append((box(_EXCURSION_FILL), "excursion"))
    if gaps:
        entries.append((box(_GAP_FILL), "data gap"))
    out = []
    x = frame.left
    for symbol, text in entries:
        out.append(f'<g class="legend" transform="translate({_n(x)},34)">{symbol}'
                   f'<text x="20" y="0">{escape(text)}</text></g>')
        x += 32 + 6.2 * len(text)
    return out


def _summary(title: str, series: list[tuple[str, list[Point]]], profile: Profile,
             excursions: list[tuple[datetime, datetime]], gaps: list[tuple[datetime, datetime]],
             start: datetime, end: datetime, zone: tzinfo, zone_label: str) -> str:
    values = [value for _, points in series for _, value in points]
    when = f"from {_local(start, zone)} to {_local(end, zone)} ({zone_label})"
    limits = _limits_text(profile)
    if not values:
        return f"{title}: No readings {when}. Profile {profile.title}: {limits}."
    names = ", ".join(name for name, points in series if points)
    return (
        f"{title}: temperature of {names} {when}. Profile {profile.title}: {limits}. "
        f"{len(excursions)} excursion(s), {len(gaps)} data gap(s). "
        f"Lowest {min(values):.1f} °C, highest {max(values):.1f} °C."
    )


def _limits_text(profile: Profile) -> str:
    if profile.low is not None and profile.high is not None:
        return f"{profile.low:g} to {profile.high:g} °C"
    if profile.high is not None:
        return f"at or below {profile.high:g} °C"
    return f"at or above {profile.low:g} °C"


def _local(at: datetime, zone: tzinfo) -> str:
    local = at.astimezone(zone)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} {local:%H:%M}"


def _zone_name(zone: tzinfo, at: datetime) -> str:
    name, abbreviation = str(zone), at.astimezone(zone).tzname()
    return name if not abbreviation or abbreviation == name else f"{name} ({abbreviation})"


def _microseconds(duration: timedelta) -> int:
    return (duration.days * _DAY + duration.seconds) * 1_000_000 + duration.microseconds


def _n(number: float) -> str:
    """Coordinates to one decimal, without a trailing '.0': deterministic and short."""
    text = f"{number:.1f}"
    text = text[:-2] if text.endswith(".0") else text
    return "0" if text == "-0" else text
