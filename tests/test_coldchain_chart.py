"""Temperature charts: thinning never hides an excursion, and the SVG shows limits, excursions,
gaps and local times a reader can trust."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from coldchain import load_profiles
from coldchain.chart import Point, series_points, svg, thin

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PROFILES = load_profiles()
SVG = "{http://www.w3.org/2000/svg}"
BERLIN = ZoneInfo("Europe/Berlin")


def parse(document: str) -> ET.Element:
    return ET.fromstring(document)  # noqa: S314 - our own output, parsed to prove it well-formed


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [element for element in root.iter() if element.get("class") == name]


def texts(root: ET.Element, name: str | None = None) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")
            if name is None or element.get("class") == name]


Span = tuple[datetime, datetime]


def fridge_chart(
    points: list[Point],
    *,
    excursions: Sequence[Span] = (),
    gaps: Sequence[Span] = (),
    title: str = "Shipment S-1",
) -> str:
    """One logger over twelve hours from T0 against 2-8 C, shown in Berlin time."""
    return svg([("Logger L1", points)], profile=PROFILES["2-8C"], excursions=list(excursions),
               gaps=list(gaps), window=(T0, T0 + 12 * 60 * MINUTE), zone=BERLIN, title=title)


def test_thinning_100000_readings_keeps_a_single_reading_spike() -> None:
    points = [(T0 + i * 6 * timedelta(seconds=1), 5.0 + (i % 10) / 100) for i in range(100_000)]
    points[61_234] = (points[61_234][0], 25.0)
    end = points[-1][0]

    buckets = thin(points, start=T0, end=end, buckets=300)
    kept = series_points(buckets)

    assert len(buckets) == 300 and len(kept) <= 4 * 300
    assert points[61_234] in kept
    assert max(value for _, value in kept) == 25.0
    assert [at for at, _ in kept] == sorted(at for at, _ in kept)


@given(
    st.integers(1, 20),
    st.integers(1, 50),
    st.lists(st.tuples(st.integers(0, 1000), st.floats(-200, 50, allow_nan=False)), min_size=1, max_size=200),
)
def test_thinning_keeps_the_extremes_of_every_bucket(
    buckets: int, seconds: int, raw: list[tuple[int, float]]
) -> None:
    # Bucket width is a whole number of seconds, so which bucket a point belongs to is exact.
    end = T0 + timedelta(seconds=buckets * seconds)
    points = sorted((T0 + timedelta(seconds=s), value) for s, value in raw)
    inside = [p for p in points if p[0] <= end]

    found = thin(points, start=T0, end=end, buckets=buckets)

    assert sum(bucket.count for bucket in found) == len(inside)
    for bucket in found:
        mine = [p for p in inside if bucket.start <= p[0] < bucket.end or (p[0] == end == bucket.end)]
        assert bucket.low[1] == min(value for _, value in mine)
        assert bucket.high[1] == max(value for _, value in mine)
        assert (bucket.first, bucket.last) == (mine[0], mine[-1])
    kept = [value for _, value in series_points(found)]
    if inside:
        assert min(kept) == min(v for _, v in inside) and max(kept) == max(v for _, v in inside)


def test_the_chart_is_well_formed_with_limits_excursion_and_local_times() -> None:
    points = [(T0 + 5 * i * MINUTE, 12.0 if 20 <= i < 30 else 5.0) for i in range(144)]
    excursion = (T0 + 100 * MINUTE, T0 + 150 * MINUTE)

    root = parse(fridge_chart(points, excursions=[excursion], gaps=[(T0 + 300 * MINUTE, T0 + 330 * MINUTE)],
                              title="Shipment <S-1> & Co"))

    assert root.get("role") == "img" and root.get("viewBox") == "0 0 900 320"
    assert root.findtext(f"{SVG}title") == "Shipment <S-1> & Co"
    assert "1 excursion(s), 1 data gap(s)" in (root.findtext(f"{SVG}desc") or "")
    assert len(by_class(root, "limit")) == 2 and len(by_class(root, "pre-limit")) == 2
    assert {e.get("stroke-dasharray") for e in by_class(root, "pre-limit")} == {"6 4"}
    assert "limit 8 °C" in texts(root) and "pre-alarm 3 °C" in texts(root)
    [band] = by_class(root, "excursion")
    assert float(band.get("width") or 0) > 0
    assert len(by_class(root, "gap")) == 1
    [line] = by_class(root, "series")
    assert line.tag == f"{SVG}polyline" and line.findtext(f"{SVG}title") == "Logger L1"
    # 08:00 UTC is 09:00 in Berlin in November; ticks fall on round local hours.
    assert "10:00" in texts(root, "time") and "22 Nov 2026" in texts(root, "date")
    assert "Time in Europe/Berlin (CET)" in texts(root)
    assert not any(element.tag.endswith("script") for element in root.iter())


def test_the_same_data_draws_the_same_chart() -> None:
    points = [(T0 + 5 * i * MINUTE, 4.0 + i % 3) for i in range(50)]

    assert fridge_chart(points) == fridge_chart(list(points))


def test_an_instant_excursion_is_still_visible() -> None:
    root = parse(fridge_chart([(T0, 9.0)], excursions=[(T0 + 60 * MINUTE, T0 + 60 * MINUTE)]))

    [band] = by_class(root, "excursion")
    assert float(band.get("width") or 0) >= 2


def test_a_chart_without_readings_says_so() -> None:
    root = parse(fridge_chart([]))

    assert "No readings" in texts(root)
    assert "No readings" in (root.findtext(f"{SVG}desc") or "")
    assert by_class(root, "series") == []


def test_one_reading_and_constant_readings_are_drawn() -> None:
    one = parse(fridge_chart([(T0, 5.0)]))
    flat = parse(fridge_chart([(T0 + i * MINUTE, 5.0) for i in range(10)]))

    assert [e.tag for e in by_class(one, "series")] == [f"{SVG}circle"]
    assert [e.tag for e in by_class(flat, "series")] == [f"{SVG}polyline"]


def test_dry_ice_chart_shows_both_the_limit_and_the_much_colder_data() -> None:
    points = [(T0 + 10 * i * MINUTE, -79.0) for i in range(20)]

    root = parse(svg([("Shipper 7", points)], profile=PROFILES["dry-ice"], excursions=[], gaps=[],
                     window=(T0, T0 + 200 * MINUTE), zone=UTC, title="Dry ice"))

    ticks = [float(text) for text in texts(root) if text.lstrip("-").isdigit()]
    assert min(ticks) <= -79.0 and max(ticks) >= -60.0
    assert len(by_class(root, "limit")) == 1
    assert "Time in UTC" in texts(root)
