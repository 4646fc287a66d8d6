"""Input shapes, shared by the web forms and the JSON API so both refuse the same things."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from coi.core.errors import InvalidInput

# Control characters (NUL, escape sequences, line breaks) have no place in a name or number
# that is printed on labels and shown on screens.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32,
                                        pattern=PRINTABLE)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200,
                                        pattern=PRINTABLE)]
Mrn = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40,
                                       pattern=PRINTABLE)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1000)]
UnitKind = Literal["apheresis_bag", "sample", "drug_product_bag"]


def _written_date(value: Any) -> Any:
    """Refuse what pydantic's lax mode would read as Unix time (0 or "0" is 1970-01-01):
    a date comes as YYYY-MM-DD and nothing else."""
    if isinstance(value, int | float) or (
            isinstance(value, str) and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value)):
        raise PydanticCustomError("date_format", "Give a date as YYYY-MM-DD.")
    return value


IsoDate = Annotated[date, BeforeValidator(_written_date)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class PatientIn(Strict):
    name: Name = Field(description="Full name as on the patient's wristband")
    birth_date: IsoDate = Field(description="Date of birth, ISO 8601 (YYYY-MM-DD)")
    mrn: Mrn = Field(description="Medical record number at the treating site")


class EnrolmentIn(Strict):
    site: Code = Field(description="Code of the collection (treating) site")
    product: Code = Field(description="Product code")
    manufacturing_site: Code = Field(description="Code of the manufacturing site")
    patient: PatientIn


class UnitIn(Strict):
    kind: UnitKind = Field(description="Kind of container")


class PatientCorrectionIn(Strict):
    name: Name | None = None
    birth_date: IsoDate | None = None
    mrn: Mrn | None = None
    reason: Reason
    password: str = Field(min_length=1, max_length=200, description="Signer's password")


class ScanIn(Strict):
    text: str = Field(min_length=1, max_length=4000, description="Text as the scanner sent it")


def validate(model: type[Strict], data: Any) -> Any:
    """`data` as `model`, or InvalidInput naming every field that is wrong."""
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(part) for part in error["loc"]) or "(body)",
                   "message": _message(error)} for error in exc.errors()]
        listed = "; ".join(f"{e['field']}: {e['message'].rstrip('.')}" for e in errors[:4])
        raise InvalidInput(f"Nothing was saved. Check {len(errors)} field(s): {listed}.",
                           errors) from None
    # Fields without the PRINTABLE pattern (scanned text, passwords, reasons) still take
    # anything; NUL in them reached PostgreSQL, which refuses it in text: a 500.
    found = _nul_fields(data)
    if found:
        raise InvalidInput(f"Nothing was saved. {found[0]}: {NUL_MESSAGE}",
                           [{"field": field, "message": NUL_MESSAGE} for field in found])
    return validated


NUL_MESSAGE = "A NUL character (\\u0000) is not allowed here."


def _nul_fields(document: Any) -> list[str]:
    """The dotted path of every string holding NUL in `document` (parsed JSON), found with a
    loop: it may be nested as deep as the decoder allows."""
    found, stack = [], [("", document)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            found.append(path or "(body)")
        elif isinstance(node, dict):
            stack.extend((f"{path}.{key}".lstrip("."), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}.{index}".lstrip("."), item) for index, item in enumerate(node))
    return sorted(found)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing" or (error.get("input") is None and kind.endswith("_type")):
        return "This field is required."
    if kind == "extra_forbidden":
        return "This field is not expected."
    if kind.startswith("datetime") or kind.startswith("timezone"):
        return "Give the time as ISO 8601 with its zone, e.g. 2026-11-22T09:00:00+01:00."
    if kind.startswith("date"):
        return "Give a date as YYYY-MM-DD."
    if kind == "string_too_short":
        return "This field must not be empty." if error["ctx"]["min_length"] == 1 else \
            f"Give at least {error['ctx']['min_length']} characters."
    if kind == "string_too_long":
        return f"At most {error['ctx']['max_length']} characters."
    if kind == "literal_error":
        return "Choose one of: " + error["ctx"]["expected"]
    if kind == "string_pattern_mismatch":
        return "Control characters (such as line breaks) are not allowed here."
    if kind == "string_type":
        return "Give this as text."
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "Give this as a JSON object."
    return str(error["msg"])


ScannedText = Annotated[str, StringConstraints(min_length=1, max_length=500)]


def _written_time(value: Any) -> Any:
    """As for dates: a time comes as ISO 8601 text, never as a number read as Unix time."""
    if not isinstance(value, str | datetime):
        raise PydanticCustomError("datetime_format", "Give the time as ISO 8601 with its zone.")
    return value


class ScanEntryIn(Strict):
    text: ScannedText = Field(description="Exactly what the scanner sent (or the person typed)")
    method: Literal["scanned", "typed", "camera"] = Field(
        "scanned", description="How the code was entered; a typed code is typed twice")
    again: ScannedText | None = Field(None, description="The second typing of a typed code")


class SignerIn(Strict):
    username: Code
    password: str = Field(min_length=1, max_length=200)


class CustodyScanIn(Strict):
    step: Code | None = Field(None, description="Route step the scan is for; required unless "
                                                "`partial` (then it defaults to the case's next)")
    case: Code | None = Field(None, description="COI identifier; by default the case the "
                                                "scanned codes name")
    scans: list[ScanEntryIn] = Field(min_length=1, max_length=40)
    site: Code | None = Field(None, description="Code of the site you scan at, if you work at "
                                                "several where the step can be done")
    password: str | None = Field(None, max_length=200,
                                 description="Your password: your signature, where the step asks")
    verifiers: list[SignerIn] = Field(default_factory=list, max_length=3,
                                      description="Second people who verify, with their passwords")
    idempotency_key: str = Field(min_length=8, max_length=100, pattern=PRINTABLE,
                                 description="Unique per scan (a UUID); a retry with the same key "
                                             "is recorded once and answers the same")
    device_at: Annotated[AwareDatetime, BeforeValidator(_written_time)] = Field(
        description="The device's own clock when the scan was made, ISO 8601 with zone")
    device: Code | None = Field(None, description="Scanner or device name")
    partial: bool = Field(False, description="Judge the codes scanned so far without recording "
                                             "an accepted scan (the scan page, code by code)")
