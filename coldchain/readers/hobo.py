"""Onset HOBOware exports: a delimited file whose header names the logger ('LGR S/N: ...') and,
usually, the UTC offset of the times ('Date Time, GMT+01:00'); event columns ('Coupler
Detached', 'Logged') are not readings."""

from __future__ import annotations

import re

from coldchain.model import ReadOptions, Source
from coldchain.readers import delimited
from coldchain.readers.common import refuse
from coldchain.readers.text import Text

_SERIAL = re.compile(r"LGR S/N:\s*(\w+)")
_MARKS = re.compile(r"Plot Title:|LGR S/N:|Host Connected|End Of File|Coupler Attached")


def detect(text: Text) -> bool:
    return any(_MARKS.search(line) for line in text.head[:3])


def read(text: Text, options: ReadOptions) -> Source:
    top = text.head[:3]
    serials = sorted({serial for line in top for serial in _SERIAL.findall(line)})
    if len(serials) > 1:
        raise refuse(f"the export holds several loggers ({', '.join(serials)}); export one logger per file")
    meta = {}
    title = re.search(r"Plot Title:\s*([^\";,]*)", top[0])
    if title and title.group(1).strip():
        meta["plot_title"] = title.group(1).strip()
    return delimited.read(text, options, delimited.Hints(
        format="hobo-csv", logger_id=serials[0] if serials else None, meta=meta))
