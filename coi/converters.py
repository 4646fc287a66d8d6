"""URL converters for row ids: an id no row can have is a 404 at routing, before any view
or query runs. The database would refuse it less kindly: PostgreSQL raises "integer out of
range" for an `integer` column compared with 2**31 (SQLAlchemy binds the parameter as the
column's type), and SQLite's driver raises OverflowError from 2**63 on. Both were 500s."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter, Map

# Ids are PostgreSQL `integer` (SERIAL) columns, except label ids (`bigint`: drawn at random
# below 2**32, so that codes reveal no counts).
ROW_ID_MAX = 2**31 - 1
BIG_ID_MAX = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """`<int:...>` app-wide: a whole number from 0 to ROW_ID_MAX in ASCII digits (Python's
    \\d would also take other scripts' digits, an alias nobody links to)."""

    regex = "[0-9]+"

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = ROW_ID_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


class BigIdConverter(RowIdConverter):
    """`<bigint:...>`: the id of a `bigint` column (labels)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = BIG_ID_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


CONVERTERS = {"int": RowIdConverter, "bigint": BigIdConverter}
