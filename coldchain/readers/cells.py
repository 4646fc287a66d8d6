"""How a delimited file's data rows line up with its header.

A header names N columns. A data row with more filled cells than that is never read as it
stands: its values would land under the wrong names. The one case that is put right is an
export whose delimiter and decimal mark are both commas, unquoted ('09:00,17,97,45,3' under
'Time,Temp,RH'), and only when joining integer,fraction pairs gives one and the same layout
for every row; anything else refuses the file naming the line (in the first 64 KB) or makes
the row a problem (after it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations
from math import comb

from coldchain.model import Unreadable
from coldchain.readers.common import refuse

_INTEGER = re.compile(r"^\s*[+-]?\d+$")  # the part before a decimal comma: no space before the comma
_FRACTION = re.compile(r"^\d+$")  # the part after it: digits only, no space after the comma
_MAX_LAYOUTS = 1000  # more ways than this to split one row is no layout anyone can vouch for


@dataclass(frozen=True)
class Shape:
    """The header's column count, and the raw cell positions where a decimal comma split one
    number in two (each joined with the cell after it)."""

    names: int
    joins: tuple[int, ...] = ()

    @property
    def cells(self) -> int:
        return self.names + len(self.joins)


def filled(cells: list[str]) -> int:
    """The row's length without trailing empty cells (a trailing delimiter is common)."""
    length = len(cells)
    while length and not cells[length - 1].strip():
        length -= 1
    return length


def _layouts(cells: list[str], names: int, delimiter: str) -> set[tuple[int, ...]]:
    """The ways the row fits a header of `names` columns: () when it fits as it is, else each
    choice of comma-split numbers whose joining leaves exactly `names` cells."""
    extra = filled(cells) - names
    if extra <= 0:
        return {()}
    if delimiter != ",":
        return set()
    pairs = [i for i in range(filled(cells) - 1)
             if _INTEGER.match(cells[i]) and _FRACTION.match(cells[i + 1])]
    if comb(len(pairs), extra) > _MAX_LAYOUTS:
        return set()
    return {joins for joins in combinations(pairs, extra)
            if all(b - a > 1 for a, b in zip(joins, joins[1:], strict=False))}


def _fits(cells: list[str], names: int, joins: tuple[int, ...]) -> bool:
    """The row fits the header once the numbers at `joins` are joined."""
    if not joins:
        return filled(cells) <= names
    return filled(cells) == names + len(joins) and \
        all(_INTEGER.match(cells[i]) and _FRACTION.match(cells[i + 1]) for i in joins)


def join(cells: list[str], joins: tuple[int, ...]) -> list[str]:
    """The row with each split number joined back ('17', '97' -> '17,97')."""
    out: list[str] = []
    skip = -1
    for index, cell in enumerate(cells):
        if index == skip:
            continue
        if index in joins:
            out.append(f"{cell},{cells[index + 1]}")
            skip = index + 1
        else:
            out.append(cell)
    return out


def settle(rows: list[tuple[int, list[str]]], names: int, delimiter: str) -> Shape:
    """The one layout every data row (line, cells) of the head fits, or Unreadable naming the
    first line that fits none, that fits differently from the rows above it, or that could
    be read more than one way."""
    common: set[tuple[int, ...]] | None = None
    for line, cells in rows:
        if common is None:
            common = _layouts(cells, names, delimiter)
            if not common:
                raise _unfitting(line, cells, names)
            continue
        fitting = {joins for joins in common if _fits(cells, names, joins)}
        if not fitting:
            if not _layouts(cells, names, delimiter):
                raise _unfitting(line, cells, names)
            above = names + len(next(iter(common)))
            raise refuse(f"the row has {filled(cells)} cells where the rows above have {above} "
                         f"for the header's {names} columns, so its values cannot be matched to the columns "
                         "(numbers written with a decimal comma in a comma-separated file?): export the file "
                         "with ';' as the delimiter or with quoted values", line=line)
        common = fitting
    if not common or common == {()}:
        return Shape(names)
    if len(common) > 1:
        line, cells = rows[0]  # every row fits each of the layouts, the first as well as any
        readings = " or as ".join(f"'{' | '.join(join(cells, joins)[:filled(cells) - len(joins)])}'"
                                  for joins in sorted(common)[:3])
        raise refuse(f"the row has {filled(cells)} cells for the header's {names} columns: with a comma as "
                     f"both delimiter and decimal mark it could be read as {readings}, and no row settles "
                     "it: export the file with ';' as the delimiter or with quoted values", line=line)
    return Shape(names, common.pop())


def shaped(cells: list[str], shape: Shape) -> list[str] | str:
    """A row after the head, lined up with the header; or why it cannot be."""
    count = filled(cells)
    if not shape.joins:
        if count <= shape.names:
            return cells
        return (f"the row has {count} cells but the header names {shape.names} columns, so its values cannot "
                "be matched to the columns")
    if _fits(cells, shape.names, shape.joins):
        return join(cells, shape.joins)
    return (f"the row does not split its decimal-comma numbers like the others ({count} cells where they "
            f"have {shape.cells}), so its values cannot be matched to the columns")


def _unfitting(line: int, cells: list[str], names: int) -> Unreadable:
    return refuse(f"the row has {filled(cells)} cells but the header names {names} columns, so its values "
                  "cannot be matched to the columns: export the file again with one value per column",
                  line=line)
