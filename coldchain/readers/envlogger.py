"""ElectricBlue EnvLogger exports (EnvLogger Viewer app): a 'key, value' preamble between
dashed lines (serial number, time zone, unit, and the logger clock's difference from the
phone's at download), then 'time,temp' rows."""

from __future__ import annotations

from datetime import timedelta

from coldchain.model import ReadOptions, Source
from coldchain.readers import delimited
from coldchain.readers.common import stated_offset, units_in
from coldchain.readers.text import Text

_CLOCK_DIFF = "time diff [logger-smartphone](sec)"
_META = {"envlogger version": "firmware", "custom name": "custom_name", "device name": "device_name",
         "samples": "samples", "sampling resolution": "resolution"}


def detect(text: Text) -> bool:
    return any("electricblue" in line.lower() or line.startswith("EnvLogger version")
               for line in text.head[:10])


def read(text: Text, options: ReadOptions) -> Source:
    dashes = [n for n, line in enumerate(text.head[:60], 1) if line.startswith("-----")]
    facts: dict[str, str] = {}
    for line in text.head[:dashes[-1] if dashes else 0]:
        key, comma, value = line.partition(",")
        if comma and not line.startswith("-----"):
            facts[key.strip().lower()] = value.strip()
    meta = {key: facts[name] for name, key in _META.items() if name in facts}
    clock_offset = None
    if _CLOCK_DIFF in facts:
        try:
            clock_offset = timedelta(seconds=int(facts[_CLOCK_DIFF]))
        except ValueError:
            meta["clock_note"] = f"the clock difference '{facts[_CLOCK_DIFF]}' is not a number of seconds"
        else:
            meta["clock_note"] = (f"at download the logger's clock differed from the phone's by "
                                  f"{clock_offset.total_seconds():+.0f} s (logger minus phone); the times "
                                  "are as the logger recorded them")
    units = units_in(facts.get("temperature", ""))
    return delimited.read(text, options, delimited.Hints(
        format="envlogger", logger_id=facts.get("serial number"),
        zone=stated_offset(facts.get("time zone", "")),
        unit=units.pop() if len(units) == 1 else None, clock_offset=clock_offset,
        header_line=dashes[-1] + 1 if dashes else None, meta=meta))
