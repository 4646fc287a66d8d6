"""Gemini Tinytag Explorer exports: header rows 'S/N', 'Type' (with the unit), 'Description'
and 'Property' (the channel names) above numbered 'n,time,value,...' rows; no zone."""

from __future__ import annotations

from coldchain.model import ReadOptions, Source
from coldchain.readers import delimited
from coldchain.readers.common import units_in
from coldchain.readers.text import Text


def detect(text: Text) -> bool:
    firsts = {line.split(",", 1)[0] for line in text.head[:10]}
    return {"S/N", "Type", "Property"} <= firsts


def read(text: Text, options: ReadOptions) -> Source:
    rows: dict[str, tuple[int, list[str]]] = {}
    for number, line in enumerate(text.head[:10], 1):
        cells = delimited.split_cells(line, ",")
        rows.setdefault(cells[0].strip(), (number, [cell.strip() for cell in cells]))
    header_line, properties = rows["Property"]
    columns = [i for i, name in enumerate(properties) if "temp" in name.lower()]
    logger_id = unit = None
    meta = {}
    if len(columns) == 1:
        column = columns[0]
        cell = {key: cells[column] if column < len(cells) else "" for key, (_, cells) in rows.items()}
        logger_id = cell.get("S/N") or None
        units = units_in(cell.get("Type", ""))
        unit = units.pop() if len(units) == 1 else None
        meta = {"type": cell.get("Type", ""), "description": cell.get("Description", "")}
    return delimited.read(text, options, delimited.Hints(
        format="tinytag-explorer", logger_id=logger_id, unit=unit, header_line=header_line,
        meta={key: value for key, value in meta.items() if value}))
