"""GS1 EPCIS 2.0 documents carrying sensor data, in JSON-LD or XML.

Only temperature reports ('Temperature' or 'gs1:Temperature') with a single value are
readings; uom CEL, FAH or KEL. A report's time is its own 'time', else its sensorMetadata's,
else the event's eventTime, each with its UTC offset. Aggregates (min/max/mean over a period)
and exceptions (ERROR_CONDITION, ALARM_CONDITION) are skipped with the reason. A reading's
`line` is the 1-based position of its sensorReport among all sensorReports of the document,
in document order (documents have no meaningful lines); a problem says where a person finds
the report instead ('event 3, sensor report 2': the event's position in the event list, the
report's among that event's reports). Documents are parsed whole: the app's
size limit keeps them small. XML with a DOCTYPE or entity declarations is refused.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - DOCTYPE and entities are refused before parsing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from math import isfinite

from coldchain.model import Problem, Reading, ReadOptions, Source
from coldchain.readers.common import (
    Notes,
    choose_logger,
    make_source,
    offset_name,
    refuse,
    to_celsius,
    usual_step,
)
from coldchain.readers.text import Text

_TEMPERATURE = frozenset({"Temperature", "gs1:Temperature", "https://gs1.org/voc/Temperature",
                          "http://gs1.org/voc/Temperature"})
_UNITS = {"CEL": "C", "FAH": "F", "KEL": "K"}
_AGGREGATES = ("minValue", "maxValue", "meanValue", "sDev", "percValue")
_DECLARATIONS = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


@dataclass(frozen=True)
class _Report:
    position: int  # 1-based, among all sensorReports of the document
    fields: Mapping[str, object]
    metadata: Mapping[str, object]
    event_time: object
    event: int = 0  # 1-based position of its event in the event list
    in_event: int = 0  # 1-based position among its event's sensor reports

    @property
    def where(self) -> str:
        """Where a person finds the report in the document: documents have no lines."""
        return f"event {self.event}, sensor report {self.in_event}"


def is_epcis(document: object) -> bool:
    return isinstance(document, dict) and (
        document.get("type") in ("EPCISDocument", "EPCISQueryDocument") or "epcisBody" in document)


def read_jsonld(document: object, options: ReadOptions) -> Source:
    return _source(list(_json_reports(document)), "epcis-jsonld", options)


def detect_xml(text: Text) -> bool:
    first = next((line.lstrip() for line in text.head if line.strip()), "")
    return first.startswith("<")


def read_xml(text: Text, options: ReadOptions) -> Source:
    body = text.read_all()
    if _DECLARATIONS.search(body):
        raise refuse("the XML declares a DOCTYPE or entities, which an EPCIS document does not need; it is "
                     "refused for safety: send the document without them")
    try:
        root = ET.fromstring(body)  # noqa: S314 - no DOCTYPE, so no entity expansion
    except ET.ParseError as error:
        raise refuse(f"the XML is not well formed ({error}); send the document as exported") from None
    if not _local(root.tag).startswith("EPCIS"):
        raise refuse(f"this XML is not an EPCIS document (its root element is '{_local(root.tag)}')")
    return _source(list(_xml_reports(root)), "epcis-xml", options)


def _json_reports(document: object) -> Iterator[_Report]:
    position = 0
    for number, event in _json_events(document):
        in_event = 0
        for element in _list(event.get("sensorElementList")):
            if not isinstance(element, dict):
                continue
            metadata = element.get("sensorMetadata")
            for report in _list(element.get("sensorReport")):
                position += 1
                in_event += 1
                yield _Report(position, report if isinstance(report, dict) else {},
                              metadata if isinstance(metadata, dict) else {}, event.get("eventTime"),
                              number, in_event)


def _json_events(document: object) -> Iterator[tuple[int, dict[str, object]]]:
    """The objects holding a sensorElementList, in document order, with their 1-based
    position in the list holding them (the eventList). A loop over a stack, not recursion: a
    document nested a few hundred levels deep (which the JSON decoder still reads) must not
    exhaust the interpreter's recursion limit here."""
    stack: list[tuple[int, object]] = [(1, document)]
    while stack:
        number, node = stack.pop()
        if isinstance(node, dict):
            if "sensorElementList" in node:
                yield number, node
            else:
                stack.extend(reversed([(1, value) for value in node.values()]))
        elif isinstance(node, list):
            stack.extend(reversed(list(enumerate(node, 1))))


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _xml_reports(root: ET.Element) -> Iterator[_Report]:
    position = 0
    for event, number in _xml_events(root):
        lists = [child for child in event if _local(child.tag) == "sensorElementList"]
        event_time = next((child.text for child in event if _local(child.tag) == "eventTime"), None)
        in_event = 0
        for element in (element for found in lists for element in found):
            metadata = next((_attributes(child) for child in element
                             if _local(child.tag) == "sensorMetadata"), {})
            for child in element:
                if _local(child.tag) == "sensorReport":
                    position += 1
                    in_event += 1
                    yield _Report(position, _attributes(child), metadata, event_time, number, in_event)


def _xml_events(root: ET.Element) -> Iterator[tuple[ET.Element, int]]:
    """The elements holding a sensorElementList, in document order, with their 1-based
    position among their siblings (the events of the EventList)."""
    if any(_local(child.tag) == "sensorElementList" for child in root):
        yield root, 1
    for parent in root.iter():
        for number, event in enumerate(parent, 1):
            if any(_local(child.tag) == "sensorElementList" for child in event):
                yield event, number


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _attributes(element: ET.Element) -> dict[str, object]:
    return {name: value for name, value in element.attrib.items() if not name.startswith("{")}


def _source(reports: list[_Report], fmt: str, options: ReadOptions) -> Source:
    devices = sorted({str(device) for report in reports if report.fields.get("type") in _TEMPERATURE
                      if (device := report.fields.get("deviceID") or report.metadata.get("deviceID"))})
    meta: dict[str, str] = {}
    if len(devices) > 1:
        logger_id = None
        meta["devices"] = ", ".join(devices)
    else:
        logger_id = choose_logger(devices[0] if devices else None, options, meta)
    outcomes: list[Reading | tuple[str, Problem]] = []
    offsets: set[str] = set()
    other = 0
    for report in reports:
        outcome = _outcome(report, options)
        if outcome is None:
            other += 1
        elif isinstance(outcome, Reading):
            offsets.add(offset_name(outcome.at.utcoffset() or timedelta(0)))
            outcomes.append(replace(outcome, at=outcome.at.astimezone(UTC)))
        else:
            kind, problem = outcome
            outcomes.append((kind, replace(problem, where=report.where)))
    readings = [outcome for outcome in outcomes if isinstance(outcome, Reading)]
    meta["other_reports"] = str(other)  # sensor reports about other quantities than temperature
    if offsets:
        meta["zone_source"] = "per-row offsets"  # each report's time carries its own UTC offset
    if not reports:
        meta["no_readings"] = "the document holds no readings: it has no sensor reports"
    elif other == len(reports):
        meta["no_readings"] = (f"the document holds no readings: its {other:,} sensor report(s) are about "
                               "other quantities than temperature")

    def replay(notes: Notes) -> Iterator[Reading]:
        for outcome in outcomes:
            if isinstance(outcome, Reading):
                yield outcome
            else:
                kind, problem = outcome
                (notes.skip if kind == "skip" else notes.problem)(problem.line, problem.column, problem.why,
                                                                  problem.where)

    return make_source(format=fmt, logger_id=logger_id, zone=", ".join(sorted(offsets)) or None,
                       interval=usual_step([reading.at for reading in readings]), meta=meta, rows=replay)


def _outcome(report: _Report, options: ReadOptions) -> Reading | tuple[str, Problem] | None:
    """A reading (its time in the document's offset), ("skip" or "problem", why), or None for a
    report that is not about temperature."""
    fields, line = report.fields, report.position
    kind = fields.get("type")
    if fields.get("exception"):
        about = f" about {kind}" if kind else ""
        return "skip", Problem(line, "exception", f"the sensor reported {fields['exception']}{about}, not a "
                                                  "reading")
    if kind not in _TEMPERATURE:
        return None
    if "value" not in fields:
        if any(name in fields for name in _AGGREGATES):
            return "skip", Problem(line, None, "an aggregate over a period (minimum, maximum or mean), not a "
                                               "reading")
        return "skip", Problem(line, "value", "a temperature report without a value")
    value = _number(fields["value"])
    if value is None:
        return "problem", Problem(line, "value", f"'{fields['value']}' is not a temperature")
    uom = fields.get("uom")
    unit = _UNITS.get(str(uom)) if uom else (options.mapping.unit.upper() if options.mapping and
                                            options.mapping.unit else None)
    if unit is None:
        return "problem", Problem(line, "uom", f"the unit '{uom}' is not CEL, FAH or KEL" if uom else
                                  "the report gives no unit (uom), so °C cannot be told from °F")
    at = _time(report)
    if isinstance(at, str):
        return "problem", Problem(line, "time", at)
    device = fields.get("deviceID") or report.metadata.get("deviceID") or options.logger_id
    if not device:
        return "problem", Problem(line, "deviceID", "the report names no device; say which logger it is from")
    return Reading(at, to_celsius(value, unit), str(device), line)


def _time(report: _Report) -> datetime | str:
    stated = report.fields.get("time") or report.metadata.get("time") or report.event_time
    if not isinstance(stated, str) or not stated:
        return "the report has no time, and neither has its event"
    try:
        at = datetime.fromisoformat(stated)
    except ValueError:
        return f"'{stated}' is not a time like 2019-04-02T14:05:00+01:00"
    if at.tzinfo is None:
        return f"the time '{stated}' has no UTC offset"
    return at


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and isfinite(number) else None
