"""The OpenAPI 3.1 description of /api/v1. Request bodies come from the same pydantic models
that validate them, so the document cannot drift from what the API accepts."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from coi.converters import ROW_ID_MAX
from coi.models import CASE_STATES
from coi.schemas import CustodyScanIn, EnrolmentIn, PatientIn, ScanIn, UnitIn
from coi.version import __version__

REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in (EnrolmentIn, PatientIn, UnitIn, ScanIn, CustodyScanIn):
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    found.update(_OUTPUT_SCHEMAS)
    return found


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, **_json(model.__name__)}


_PROBLEM = {"description": "Problem (RFC 9457)",
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}
_ERRORS = {str(code): _PROBLEM for code in (401, 403, 404, 413, 422)} | {"429": {
    **_PROBLEM, "description": "Too many requests for this token this minute: Problem (RFC 9457)",
    "headers": {"Retry-After": {"description": "Seconds until the token may send again",
                                "schema": {"type": "integer"}}}}}

_STR = {"type": "string"}
_OUTPUT_SCHEMAS: dict[str, Any] = {
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "code"],
                "properties": {"type": _STR, "title": _STR, "status": {"type": "integer"},
                               "detail": _STR, "code": _STR, "position": {"type": "integer"},
                               "layout": {"type": "object", "description": "a refused logger "
                                          "file's columns and first rows, to give a mapping"},
                               "max_bytes": {"type": "integer",
                                             "description": "413: the largest body this endpoint "
                                                            "accepts, in bytes"},
                               "errors": {"type": "array", "items": {
                                   "type": "object", "properties": {"field": _STR,
                                                                    "message": _STR}}}}},
    "Unit": {"type": "object", "required": ["serial", "serial_display", "kind", "sequence",
                                            "state", "registered_at"],
             "properties": {"serial": _STR, "serial_display": _STR, "kind": _STR,
                            "sequence": {"type": "integer"}, "state": _STR,
                            "registered_at": {"type": "string", "format": "date-time"},
                            "custodian_site": _STR, "coi": _STR}},
    "CaseSummary": {"type": "object", "required": ["coi", "state", "product", "site"],
                    "properties": {"coi": _STR, "state": {"enum": list(CASE_STATES)},
                                   "product": _STR, "site": _STR, "manufacturing_site": _STR,
                                   "enrolled_at": {"type": "string", "format": "date-time"}}},
    "Case": {"type": "object", "required": ["coi", "state", "product", "site", "units"],
             "description": "`patient` is present only for readers at the treating site.",
             "properties": {"coi": _STR, "coi_display": _STR, "state": {"enum": list(CASE_STATES)},
                            "product": _STR,
                            "route_version": {"type": "integer"}, "site": _STR,
                            "manufacturing_site": _STR,
                            "enrolled_at": {"type": "string", "format": "date-time"},
                            "units": {"type": "array", "items": _ref("Unit")},
                            "patient": _ref("PatientIn")}},
    "ScanVerdict": {
        "type": "object",
        "required": ["accepted", "recorded", "replayed", "case", "step", "phase", "refusals",
                     "alarms", "units", "checklist", "event"],
        "description": "`accepted` false with `recorded` true: the scan was refused, and the "
                       "refusal is on the case's ledger. `replayed`: this idempotency key was "
                       "seen before; the answer is the one recorded then.",
        "properties": {
            "accepted": {"type": "boolean"}, "recorded": {"type": "boolean"},
            "replayed": {"type": "boolean"}, "case": _STR, "case_display": _STR,
            "step": {"type": ["string", "null"]}, "step_title": {"type": ["string", "null"]},
            "phase": {"enum": ["give", "receive", "complete"]},
            "completes_step": {"type": "boolean"},
            "ready": {"type": "boolean", "description": "everything is scanned; send the scan "
                                                        "again with `partial` false to record it"},
            "refusals": {"type": "array", "items": _ref("Reason")},
            "alarms": {"type": "array", "items": {
                "type": "object", "required": ["id", "code", "severity", "message"],
                "properties": {"id": {"type": "integer"}, "code": _STR,
                               "severity": {"enum": ["critical", "major", "minor"]},
                               "message": _STR}}},
            "units": {"type": "array", "items": _STR},
            "holds": {"type": "array", "description": "What holds the case's material until QA "
                                                      "decides, as the scan found it: each with "
                                                      "its alarm, since when, the steps it stops "
                                                      "and what would lift it.",
                      "items": {"type": "object",
                                "required": ["alarm", "code", "subject", "since", "steps",
                                             "lifted_by", "message"],
                                "properties": {
                                    "alarm": {"type": "integer"}, "kind": _STR, "code": _STR,
                                    "severity": _STR, "what": _STR, "subject": _STR,
                                    "since": {"type": "string", "format": "date-time"},
                                    "since_local": _STR, "state": _STR,
                                    "outcome": {"type": ["string", "null"]},
                                    "steps": {"type": "array", "items": _STR},
                                    "lifted_by": _STR, "message": _STR}}},
            "checklist": {"type": "array", "items": {
                "type": "object", "required": ["item", "label", "done"],
                "properties": {"item": _STR, "label": _STR, "done": {"type": "boolean"}}}},
            "signing": {"type": "object", "properties": {"doer": {"type": ["string", "null"]},
                                                         "verifiers": {"type": "integer"}}},
            "site": {"type": ["string", "null"]},
            "site_name": {"type": ["string", "null"], "description": "the site's name, for people"},
            "event": {"oneOf": [{"type": "null"}, {
                "type": "object", "required": ["seq", "kind", "hash", "at"],
                "properties": {"seq": {"type": "integer"}, "kind": _STR, "hash": _STR,
                               "at": {"type": "string", "format": "date-time"}}}]},
            "next": {"oneOf": [{"type": "null"}, {
                "type": "object", "required": ["step", "title"],
                "properties": {"step": _STR, "title": _STR,
                               "due_at": {"type": ["string", "null"], "format": "date-time"},
                               "due_local": {"type": ["string", "null"]},
                               "since": _STR, "since_at": {"type": ["string", "null"]},
                               "since_title": {"type": ["string", "null"]}}}]},
        }},
    "StoredLoggerFile": {"type": "object", "required": ["created", "message", "file", "alarms"],
                         "properties": {
        "created": {"type": "boolean", "description": "the file and its readings were stored now"},
        "linked": {"type": "boolean",
                   "description": "the file was stored before for another shipment (a logger that "
                                  "travelled two legs) and is now attached to this one too, judged "
                                  "in its window; stored once"},
        "message": _STR, "shipment_url": _STR,
        "skipped_count": {"type": "integer", "description": "rows of the file that are not readings "
                                                            "(event markers, blank values) or could "
                                                            "not be read, in all"},
        "skipped": {"type": "array", "description": "the first 20 of them, with line and why",
                    "items": _ref("FileRow")},
        "notes": {"type": "array", "description": "what was put right or is worth knowing: rows "
                                                  "reordered or repeated, readings stamped before "
                                                  "a clock reset, a clock correction used",
                  "items": _ref("FileRow")},
        "file": {"type": "object", "required": ["id", "sha256", "readings"], "properties": {
            "id": {"type": "integer"}, "sha256": _STR, "filename": _STR, "size": {"type": "integer"},
            "format": _STR, "logger": _STR, "shipment": {"type": "integer"},
            "readings": {"type": ["integer", "null"]},
            "mapping": {"type": ["object", "null"],
                        "description": "the column mapping the file was read through"},
            "saved_format": {"type": ["string", "null"],
                             "description": "the saved format that mapping came from"}}},
        "alarms": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "code": _STR, "severity": _STR, "summary": _STR,
            "summary_local": {"type": "string", "description": "the summary with its UTC times "
                                                              "in the caller's time zone"}}}}}},
    "Readings": {"type": "object", "required": ["readings"], "properties": {
        "logger": _STR,
        "readings": {"type": "array", "items": {"type": "object", "required": ["at"], "properties": {
            "at": {"type": "string", "format": "date-time",
                   "description": "with its offset; a time without one is refused"},
            "celsius": {"type": "number"}, "fahrenheit": {"type": "number"}}}}}},
    "FileRow": {"type": "object", "required": ["line", "why"], "properties": {
        "line": {"type": ["integer", "null"]}, "column": {"type": ["string", "integer", "null"]},
        "why": _STR, "where": {"type": "string", "description": "where and why, as people read it: "
                                                                 "'line 12, column T: ...', or "
                                                                 "'event 3, sensor report 2: ...'"}}},
    "Reason": {"type": "object", "required": ["code", "message"],
               "properties": {"code": _STR, "message": _STR,
                              "title": {"type": "string", "description": "the code in words"}}},
    "CaseList": {"type": "object", "properties": {
        "cases": {"type": "array", "items": _ref("CaseSummary")}}},
    "ParsedIdentifier": {"oneOf": [
        {"type": "object", "required": ["type", "text", "display"],
         "properties": {"type": {"const": "coi"}, "text": _STR, "display": _STR}},
        {"type": "object", "required": ["type", "text", "display", "coi", "kind", "sequence"],
         "properties": {"type": {"const": "unit"}, "text": _STR, "display": _STR, "coi": _STR,
                        "kind": _STR, "sequence": {"type": "integer"}}},
        {"type": "object", "required": ["type", "coi", "flags", "check_verified"],
         "properties": {"type": {"const": "isbt128_din"}, "coi": _STR, "flags": _STR,
                        "check_verified": {"type": "boolean"}}},
        {"type": "object", "required": ["type", "source", "elements"],
         "properties": {"type": {"const": "gs1"}, "source": {"enum": ["element_string",
                                                                      "digital_link"]},
                        "symbology": {"type": ["string", "null"]},
                        "elements": {"type": "array", "items": {
                            "type": "object", "required": ["ai", "value"],
                            "properties": {"ai": _STR, "value": _STR}}}}},
    ]},
}

_SHIPMENT = {"name": "shipment_id", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": ROW_ID_MAX}}
_STORED = {"201": {"description": "Stored (or attached to this shipment, if stored for another) "
                          "and judged; alarms raised", **_json("StoredLoggerFile")},
           "200": {"description": "The same data was stored before for this shipment: nothing changed",
                   **_json("StoredLoggerFile")},
           "409": _PROBLEM, **_ERRORS}
_ZONE = {"name": "zone", "in": "query", "schema": _STR,
         "description": "the logger's time zone (IANA name, e.g. Europe/Berlin), confirmed or set "
                        "at upload: a file that states no zone is read in it, and a new one is kept "
                        "for the shipment's logger (audited). Default: the zone the logger has."}
_COI = {"name": "coi", "in": "path", "required": True, "schema": _STR,
        "description": "COI identifier with its check character, e.g. A999826000001X"}


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Chain-of-identity platform API", "version": __version__,
                 "description": "Enrol patients, register units and read cases. Authenticate "
                                "with an API token: `Authorization: Bearer <token>`."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/cases": {
                "get": {"summary": "List cases you may see", "operationId": "listCases",
                        "parameters": [
                            {"name": "state", "in": "query", "schema": {"enum": list(CASE_STATES)}},
                            {"name": "site", "in": "query", "schema": _STR},
                            {"name": "product", "in": "query", "schema": _STR},
                            {"name": "limit", "in": "query",
                             "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                            {"name": "offset", "in": "query",
                             "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}}],
                        "responses": {"200": {"description": "Cases", **_json("CaseList")},
                                      **_ERRORS}},
                "post": {"summary": "Enrol a patient; the case gets its COI identifier",
                         "operationId": "enrol", "requestBody": _body(EnrolmentIn),
                         "responses": {"201": {"description": "Enrolled", **_json("Case")},
                                       "409": _PROBLEM, **_ERRORS}},
            },
            "/cases/{coi}": {"get": {"summary": "Read a case", "operationId": "getCase",
                                     "parameters": [_COI],
                                     "responses": {"200": {"description": "The case",
                                                           **_json("Case")}, **_ERRORS}}},
            "/cases/{coi}/units": {"post": {
                "summary": "Register a unit against a case", "operationId": "registerUnit",
                "parameters": [_COI], "requestBody": _body(UnitIn),
                "responses": {"201": {"description": "Registered", **_json("Unit")},
                              "409": _PROBLEM, **_ERRORS}}},
            "/units/{serial}": {"get": {
                "summary": "Read a unit", "operationId": "getUnit",
                "parameters": [{"name": "serial", "in": "path", "required": True, "schema": _STR}],
                "responses": {"200": {"description": "The unit", **_json("Unit")}, **_ERRORS}}},
            "/scans": {"post": {
                "summary": "Scan for a route step: judged, recorded, answered with the verdict",
                "description": "Send every code of the step at once, the step's name, an "
                               "idempotency key and the device's own time. Where the step "
                               "asks for signatures, send your password and the verifiers'.",
                "operationId": "postScan", "requestBody": _body(CustodyScanIn),
                "responses": {"200": {"description": "The verdict", **_json("ScanVerdict")},
                              "409": _PROBLEM, **_ERRORS}}},
            "/shipments/{shipment_id}/logger-files": {"post": {
                "summary": "Upload a logger file for a shipment: stored verbatim, read, judged",
                "description": "The body is the file (CSV/TXT exports, Berlinger reports, EPCIS "
                               "2.0 documents, JSON readings). A file that states its logger's "
                               "serial is refused unless that logger is on the shipment (and is "
                               "the one `logger` names, if given). A refused file stores nothing; "
                               "the refusal is logged.",
                "operationId": "postLoggerFile",
                "parameters": [_SHIPMENT, {"name": "filename", "in": "query", "schema": _STR},
                               {"name": "logger", "in": "query", "schema": _STR,
                                "description": "needed when the shipment has several loggers and the "
                                               "file states no serial"}, _ZONE,
                               {"name": "mapping", "in": "query", "schema": _STR,
                                "description": "a column mapping as JSON, for a file detection cannot "
                                               'place: {"time": "Date Time", "value": "Temp", "unit": '
                                               '"C", "order": "DMY"} (columns by header name or number '
                                               "from 1; also date, time_format, delimiter, decimal, "
                                               "first_data_line). Without it, the saved format for "
                                               "the file's layout is used, if there is one. A refused "
                                               "file's problem lists its `layout` (columns, first "
                                               "rows) to map"},
                               {"name": "format_name", "in": "query", "schema": _STR,
                                "description": "save `mapping` under this name for every file of "
                                               "the same layout (audited; replaces the format in use "
                                               "for that layout)"}],
                "requestBody": {"required": True, "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": _STORED}},
            "/shipments/{shipment_id}/readings": {"post": {
                "summary": "Post readings as JSON for a shipment's logger",
                "operationId": "postReadings", "parameters": [_SHIPMENT, _ZONE],
                "requestBody": {"required": True, **_json("Readings")},
                "responses": _STORED}},
            "/identifiers/parse": {"post": {
                "summary": "Parse scanned text into a typed identifier",
                "operationId": "parseIdentifier", "requestBody": _body(ScanIn),
                "responses": {"200": {"description": "Parsed", **_json("ParsedIdentifier")},
                              **_ERRORS}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "API token issued by an administrator"}},
        },
    }
