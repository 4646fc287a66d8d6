"""A delimited file's layout as a person maps it: its delimiter, header and columns, and a
fingerprint of that shape, so that a column mapping given once (`ColumnMapping`) can be saved
and found again for the next file of the same shape. Also the one way to read a mapping from
plain data (a form, a JSON body, a command-line option) and to write it back.

The fingerprint is taken from what stays the same from one export of a device to the next
(the delimiter, the header's names, how many cells a data row has), never from what changes
(the preamble's serials and dates, the readings)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from coldchain.model import ColumnMapping, Unreadable
from coldchain.readers.delimited import DELIMITERS, split_cells
from coldchain.readers.stamps import ORDERS
from coldchain.readers.text import Text

SAMPLE_ROWS = 3
_NUMERIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
_TIMEISH = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}:\d{2}")
UNITS = ("C", "F")
MAPPING_KEYS = ("time", "value", "date", "unit", "order", "time_format", "delimiter", "decimal",
                "first_data_line")


@dataclass(frozen=True)
class Layout:
    """What a person needs to map a file: its columns (the header's names, or numbers when it
    has none), the first rows of data as cells, and the fingerprint of the shape."""

    delimiter: str
    header_line: int | None  # 1-based
    columns: tuple[str, ...]
    first_data_line: int | None
    sample: tuple[tuple[str, ...], ...]
    fingerprint: str

    def document(self) -> dict[str, Any]:
        return {"delimiter": self.delimiter, "header_line": self.header_line,
                "columns": list(self.columns), "first_data_line": self.first_data_line,
                "sample": [list(row) for row in self.sample], "fingerprint": self.fingerprint}


def layout_of(stream: BinaryIO, *, name: str = "") -> Layout | None:
    """The layout of a delimited text file (from its first 64 KB), or None when it is not
    delimited text with at least two columns. The stream is put back where it was."""
    start = stream.tell()
    try:
        head = Text(stream, name).head
    except Unreadable:
        return None
    finally:
        stream.seek(start)
    lines = [(number, line) for number, line in enumerate(head, 1) if line.strip()]
    if not lines or lines[0][1].lstrip("\ufeff \t").startswith(("{", "[", "<")):
        return None  # a JSON or XML document: no columns
    try:
        return _layout(lines)
    except Unreadable:  # cells that cannot be told apart: nothing a mapping can name
        return None


def _layout(lines: list[tuple[int, str]]) -> Layout | None:
    # The delimiter that gives the most data rows of one cell count, then one whose header
    # has that count too (a decimal comma in a semicolon file splits the rows evenly on commas
    # as well, but not the header).
    best: tuple[int, bool, str, int] | None = None
    for delimiter in DELIMITERS:
        counts = Counter(len(split_cells(line, delimiter)) for _n, line in lines
                         if _is_data(split_cells(line, delimiter)))
        # The commonest count of cells; of two as common, the wider (a preamble line with a
        # date is narrower than the data).
        count, rows = max(((c, r) for c, r in counts.items() if c >= 2),
                          key=lambda pair: (pair[1], pair[0]), default=(0, 0))
        if not rows:
            continue
        first = next(n for n, line in lines if len(split_cells(line, delimiter)) == count
                     and _is_data(split_cells(line, delimiter)))
        _n, names = _header(lines, delimiter, first)
        fits = names is not None and len(names) == count
        if best is None or (rows, fits) > best[:2]:
            best = (rows, fits, delimiter, count)
    if best is None:
        return None
    _rows, _fits, delimiter, count = best
    data = [(n, cells) for n, line in lines
            if len(cells := [c.strip() for c in split_cells(line, delimiter)]) == count and _is_data(cells)]
    first = data[0][0]
    header_line, columns = _header(lines, delimiter, first)
    if columns is None:
        columns = tuple(str(i + 1) for i in range(count))
    shape = "\x1f".join(cell.casefold() for cell in columns) if header_line else \
        "\x1f".join(_kind(cell) for cell in data[0][1])
    fingerprint = hashlib.sha256(f"{delimiter}\x1e{count}\x1e{shape}".encode()).hexdigest()
    return Layout(delimiter, header_line, columns, first,
                  tuple(tuple(cells) for _n, cells in data[:SAMPLE_ROWS]), fingerprint)


def _is_data(cells: list[str]) -> bool:
    """A row that holds a number or a time: data, not a name or a preamble line."""
    return any(_NUMERIC.match(c.strip()) or _TIMEISH.search(c) for c in cells if c.strip())


def _header(lines: list[tuple[int, str]], delimiter: str,
            first_data: int) -> tuple[int | None, tuple[str, ...] | None]:
    """The nearest line above the data with two or more names and no data in it."""
    above = [(n, line) for n, line in lines if n < first_data][-8:]
    for number, line in reversed(above):
        cells = [cell.strip() for cell in split_cells(line, delimiter)]
        if len([c for c in cells if c]) >= 2 and not _is_data(cells):
            return number, tuple(cells)
    return None, None


def _kind(cell: str) -> str:
    if _NUMERIC.match(cell):
        return "n"
    return "t" if _TIMEISH.search(cell) else "s"


# ------------------------------------------------------------------ mappings as plain data

class BadMapping(ValueError):
    """A mapping that cannot be used; the message says which part and why."""


def mapping_from(data: Mapping[str, Any] | str) -> ColumnMapping:
    """A ColumnMapping from plain data: a dict (a form's or a JSON body's fields; empty values
    are left out) or a JSON object as text. Columns are header names, or numbers counted
    from 1 as a person counts them (stored 0-based). Raises BadMapping."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as error:
            raise BadMapping(f"the mapping is not a JSON object ({error})") from None
        if not isinstance(data, dict):
            raise BadMapping("the mapping must be a JSON object such as "
                             '{"time": "Date Time", "value": "Temperature", "unit": "C"}')
    given = {key: value for key, value in data.items()
             if value is not None and not (isinstance(value, str) and not value.strip())}
    unknown = sorted(set(given) - set(MAPPING_KEYS))
    if unknown:
        raise BadMapping(f"the mapping has no part called {', '.join(unknown)} "
                         f"(its parts: {', '.join(MAPPING_KEYS)})")
    if "time" not in given or "value" not in given:
        raise BadMapping("say which column holds the time and which the temperature")
    unit = _choice(given, "unit", UNITS, "C or F")
    order = _choice(given, "order", ORDERS, "DMY (day first), MDY (month first) or YMD")
    decimal = _choice(given, "decimal", (".", ","), "'.' or ','")
    delimiter = given.get("delimiter")
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}.get(str(delimiter), delimiter)
        if delimiter not in DELIMITERS:
            raise BadMapping("the delimiter must be a comma, a semicolon or a tab")
    first = given.get("first_data_line")
    if first is not None:
        first = _number(first, "first_data_line")
    time_format = given.get("time_format")
    if time_format is not None and (not isinstance(time_format, str) or "%" not in time_format):
        raise BadMapping("the time format is a strptime format such as %d.%m.%Y %H:%M")
    return ColumnMapping(time=_columnar(given["time"], "time"), value=_columnar(given["value"], "value"),
                         date=_columnar(given["date"], "date") if "date" in given else None,
                         unit=unit, order=order, time_format=time_format, delimiter=delimiter,
                         decimal=decimal, first_data_line=first)


def read_mapping(text: str) -> ColumnMapping:
    """A mapping as a command line gives it: JSON, or the path of a file holding the JSON.
    Raises BadMapping."""
    source = text
    if not text.lstrip().startswith("{"):
        try:
            source = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BadMapping(f"the mapping {text!r} is neither JSON nor a readable JSON file "
                             f"({getattr(error, 'strerror', None) or error})") from None
    return mapping_from(source)


def mapping_document(mapping: ColumnMapping) -> dict[str, Any]:
    """The mapping as plain data, as `mapping_from` takes it (column numbers counted from 1)."""
    document = {key: value for key, value in asdict(mapping).items() if value is not None}
    for key in ("time", "value", "date"):
        if isinstance(document.get(key), int):
            document[key] += 1
    return document


def _columnar(value: Any, part: str) -> str | int:
    """A column by its header name, or by its number counted from 1 (0-based inside)."""
    if isinstance(value, bool):
        raise BadMapping(f"the {part} column is a header name or a column number")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        return _number(value, part) - 1
    if not isinstance(value, str) or len(value) > 200:
        raise BadMapping(f"the {part} column is a header name or a column number")
    return value.strip()


def _number(value: Any, part: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadMapping(f"{part} must be a whole number counted from 1") from None
    if not 1 <= number <= 10_000:
        raise BadMapping(f"{part} must be a whole number from 1 to 10000")
    return number


def _choice(given: Mapping[str, Any], part: str, allowed: tuple[str, ...], words: str) -> str | None:
    value = given.get(part)
    if value is None:
        return None
    text = str(value).strip()
    text = text.upper() if part in ("unit", "order") else text
    if text not in allowed:
        raise BadMapping(f"{part} must be {words}")
    return text
