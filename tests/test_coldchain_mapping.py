"""A file the readers cannot place, mapped by a person: its layout (columns, first rows, the
fingerprint of its shape), a column mapping read from plain data, and the file read through
it; the same through `python -m coldchain inspect --mapping`."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from coldchain import (
    BadMapping,
    ColumnMapping,
    ReadOptions,
    Unreadable,
    layout_of,
    mapping_document,
    mapping_from,
    read,
)
from coldchain.cli import main

UTC_ZONE = UTC


def export(serial: str, rows: list[tuple[str, float, float]]) -> bytes:
    """Two temperature probes and no word of which is the product's: detection cannot
    choose. A preamble that changes from one export to the next."""
    lines = [f"Device;{serial}", "Exported;by the vendor tool", "",
             "Date;Time;Probe A [°C];Probe B [°C]"]
    lines += [f"{day};{clock};{a:.1f};{b:.1f}".replace(f"{a:.1f}", f"{a:.1f}".replace(".", ","))
              .replace(f"{b:.1f}", f"{b:.1f}".replace(".", ","))
              for (day, clock), a, b in ((row[0].split(" "), row[1], row[2]) for row in rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


FIRST = export("LOG-1", [("03.04.2024 10:00", 5.1, 21.0), ("03.04.2024 10:05", 5.3, 21.2)])
SECOND = export("LOG-22", [("11.05.2024 08:00", 4.0, 19.5), ("11.05.2024 08:15", 4.4, 19.9),
                           ("11.05.2024 08:30", 4.1, 20.0)])


def test_a_file_detection_cannot_place_is_refused_and_its_layout_names_the_columns():
    with pytest.raises(Unreadable, match="several columns could be the temperature"):
        read(io.BytesIO(FIRST), options=ReadOptions(zone=UTC_ZONE))
    layout = layout_of(io.BytesIO(FIRST))
    assert layout is not None
    assert (layout.delimiter, layout.header_line, layout.first_data_line) == (";", 4, 5)
    assert layout.columns == ("Date", "Time", "Probe A [°C]", "Probe B [°C]")
    assert layout.sample[0] == ("03.04.2024", "10:00", "5,1", "21,0")
    # Another export of the same device: other preamble, other readings, the same shape.
    assert layout_of(io.BytesIO(SECOND)).fingerprint == layout.fingerprint  # type: ignore[union-attr]
    other = FIRST.replace(b"Probe B", b"Probe C")
    assert layout_of(io.BytesIO(other)).fingerprint != layout.fingerprint  # type: ignore[union-attr]


def test_the_file_reads_through_a_mapping_with_columns_by_name_or_number():
    by_name = mapping_from({"date": "Date", "time": "Time", "value": "Probe A [°C]", "unit": "c",
                            "order": "dmy", "zone": None, "decimal": ""})
    by_number = mapping_from('{"date": 1, "time": "2", "value": 3, "unit": "C", "order": "DMY"}')
    for mapping in (by_name, by_number):
        source = read(io.BytesIO(SECOND), options=ReadOptions(zone=UTC_ZONE, logger_id="LOG-22",
                                                              mapping=mapping))
        readings = list(source.readings)
        assert [(r.at, r.celsius) for r in readings] == [
            (datetime(2024, 5, 11, 8, 0, tzinfo=UTC), 4.0), (datetime(2024, 5, 11, 8, 15, tzinfo=UTC), 4.4),
            (datetime(2024, 5, 11, 8, 30, tzinfo=UTC), 4.1)]


def test_the_date_order_of_a_mapping_settles_dates_that_leave_it_open():
    data = b"Date,Temperature (C)\r\n03/04/2024 10:00,5.0\r\n03/04/2024 10:05,5.5\r\n"
    with pytest.raises(Unreadable, match="day"):
        list(read(io.BytesIO(data), options=ReadOptions(zone=UTC_ZONE, logger_id="L")).readings)
    for order, month in (("DMY", 4), ("MDY", 3)):
        mapping = mapping_from({"time": "Date", "value": "Temperature (C)", "order": order})
        source = read(io.BytesIO(data), options=ReadOptions(zone=UTC_ZONE, logger_id="L", mapping=mapping))
        assert [r.at.month for r in source.readings] == [month, month]


@pytest.mark.parametrize(("data", "message"), [
    ({"value": "T"}, "say which column holds the time"),
    ({"time": "A", "value": "T", "colour": "red"}, "no part called colour"),
    ({"time": "A", "value": "T", "unit": "K"}, "unit must be C or F"),
    ({"time": "A", "value": "T", "order": "DDMM"}, "order must be DMY"),
    ({"time": 0, "value": "T"}, "time must be a whole number from 1"),
    ({"time": "A", "value": "T", "delimiter": "|"}, "comma, a semicolon or a tab"),
    ({"time": "A", "value": "T", "time_format": "dd.mm.yyyy"}, "strptime format"),
    ('["time"]', "must be a JSON object"),
    ("{time:", "not a JSON object"),
])
def test_a_mapping_that_cannot_be_used_says_which_part(data, message):
    with pytest.raises(BadMapping, match=message):
        mapping_from(data)


def test_a_mapping_written_back_reads_the_same():
    mapping = mapping_from({"date": 1, "time": 2, "value": "Probe A [°C]", "unit": "C", "order": "DMY",
                            "delimiter": "semicolon", "decimal": ","})
    assert mapping == ColumnMapping(time=1, value="Probe A [°C]", date=0, unit="C", order="DMY",
                                    delimiter=";", decimal=",")
    document = mapping_document(mapping)
    assert document == {"time": 2, "value": "Probe A [°C]", "date": 1, "unit": "C", "order": "DMY",
                        "delimiter": ";", "decimal": ","}
    assert mapping_from(document) == mapping


# ---------------------------------------------------------------- on the command line


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_inspect_shows_the_columns_and_reads_through_a_mapping(tmp_path):
    path = tmp_path / "probes.csv"
    path.write_bytes(SECOND)
    status, out, _err = run("inspect", str(path), "--mapping", "show")
    assert status == 0
    assert "delimiter   semicolon" in out and "    3  Probe A [°C]" in out and "fingerprint " in out
    status, out, _err = run("inspect", str(path), "--mapping", "show", "--json")
    assert json.loads(out)["columns"][3] == "Probe B [°C]"

    status, _out, err = run("inspect", str(path), "--zone", "UTC", "--logger", "LOG-22")
    assert status == 2 and "several columns could be the temperature" in err
    mapping = tmp_path / "probes.json"
    mapping.write_text(json.dumps({"date": 1, "time": 2, "value": 4, "unit": "C", "order": "DMY"}))
    for given in (str(mapping), mapping.read_text()):
        status, out, _err = run("inspect", str(path), "--zone", "UTC", "--logger", "LOG-22",
                                "--mapping", given, "--json")
        found = json.loads(out)
        assert status == 0 and (found["count"], found["min_c"], found["max_c"]) == (3, 19.5, 20.0)


def test_inspect_refuses_a_mapping_it_cannot_use(tmp_path):
    path = tmp_path / "probes.csv"
    path.write_bytes(SECOND)
    status, _out, err = run("inspect", str(path), "--mapping", '{"time": 1}')
    assert status == 2 and "the mapping cannot be used: say which column holds" in err
    status, _out, err = run("inspect", str(path), "--mapping", str(tmp_path / "nowhere.json"))
    assert status == 2 and "neither JSON nor a readable JSON file" in err
    status, out, _err = run("inspect", str(path), "--mapping", '{"time": 2, "value": "Nope"}', "--json",
                            "--zone", "UTC")
    assert status == 2 and "the value column 'Nope' is not in the file's header" in json.loads(out)["refused"]


@pytest.mark.parametrize("data", [
    b'{"logger": "L", "readings": [{"at": "2024-01-01T00:00:00Z", "celsius": 5}]}',
    b"<?xml version='1.0'?><epcis/>",
    b"a,b\rc,\"d\"\r\n",  # cells that cannot be told apart
    b"just one column\n12\n",
])
def test_a_file_without_columns_to_map_has_no_layout(data):
    assert layout_of(io.BytesIO(data)) is None
