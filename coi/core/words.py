"""The platform's codes as people read them: one vocabulary of display names for roles, steps,
states, alarms, refusals, sites and shipments. Pages show these words; APIs keep the codes.

Pure data and small functions: no framework, no clock. A code this vocabulary does not know
is shown with its underscores as spaces, so a new code is readable before it is named here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from coi.core.display import coi_display, local_text, minutes_words, unit_display

ROLES = {
    "site_staff": "Site staff",
    "coordinator": "Coordinator",
    "courier": "Courier",
    "qa": "QA",
    "admin": "Administrator",
}

SITE_KINDS = {
    "collection": "collection site",
    "treatment": "treatment site",
    "manufacturing": "manufacturing site",
    "courier_depot": "courier depot",
}

UNIT_KINDS = {
    "apheresis_bag": "apheresis bag",
    "sample": "sample",
    "drug_product_bag": "drug product bag",
    "wristband": "patient wristband",
}

CASE_STATES = {
    "enrolled": "Enrolled",
    "in_progress": "In progress",
    "complete": "Complete",
}

# A unit's state is the name of the last step it went through (coi.services.custody): said
# as what happened to it. An unknown step reads "after <step>".
UNIT_STATES = {
    "registered": "registered",
    "enrol": "enrolled",
    "collect": "collected",
    "pack": "packed",
    "pickup": "with the courier",
    "deliver_manufacturing": "delivered to manufacturing",
    "manufacture": "manufactured",
    "release": "released by QA",
    "pickup_return": "with the courier (return)",
    "deliver_treatment": "delivered to the treatment site",
    "thaw": "thawed",
    "infuse": "infused",
    "consumed": "used up",
    "destroyed": "destroyed",
}

# Steps by name where no route is at hand to give its title (a route's title wins).
STEPS = {
    "enrol": "Enrolment",
    "collect": "Apheresis collection",
    "pack": "Packing",
    "pickup": "Courier pickup",
    "deliver_manufacturing": "Delivery to manufacturing",
    "manufacture": "Manufacture",
    "release": "QA release",
    "pickup_return": "Courier pickup for return",
    "deliver_treatment": "Delivery to the treatment site",
    "thaw": "Thaw",
    "infuse": "Bedside infusion",
}

SHIPMENT_STATES = {
    "open": "Being packed",
    "in_transit": "In transit",
    "received": "Received",
}

LEGS = {
    "outbound": "outbound",
    "return": "return",
}

ALARM_STATES = {
    "open": "Open",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
}

SEVERITIES = {
    "critical": "Critical",
    "major": "Major",
    "minor": "Minor",
}

ALARM_KINDS = {
    "custody": "Custody",
    "temperature": "Temperature",
    "deadline": "Deadline",
}

# What QA decided about the product, in a few words (the forms offer the long sentences of
# coi.models.alarm.OUTCOMES).
OUTCOMES = {
    "accepted": "product accepted",
    "accepted_with_deviation": "accepted under a deviation",
    "quarantined": "product quarantined",
    "destroyed": "product destroyed",
    "no_product_impact": "no product involved",
}

# Why a scan was refused; the same codes name custody alarms.
REFUSALS = {
    "already_done": "Step already recorded",
    "bad_entry": "Unknown way of entering a code",
    "consumed": "Unit already used up",
    "destroyed": "Unit destroyed",
    "handoff_pending": "Handover waiting for its receiver",
    "late": "Step late",
    "missing_scan": "Something still to scan",
    "missing_verifier": "A verifier is missing",
    "not_handed_over": "Not handed over to you",
    "not_in_custody": "Not in your custody",
    "not_ours": "Not one of our labels",
    "other_case": "Belongs to another case",
    "out_of_order": "Step out of order",
    "route_complete": "Every step is already recorded",
    "scanned_twice": "Scanned twice",
    "self_verified": "Verified by the doer",
    "signature_failed": "Signature not accepted",
    "signer_locked": "Signer locked out",
    "typed_mismatch": "The two typed entries differ",
    "unknown_step": "No such step",
    "unknown_unit": "Unit not registered for this case",
    "verifier_role": "Verifier without the role",
    "wrong_kind": "Wrong kind of unit",
    "wrong_person": "Wrong patient",
    "wrong_role": "Not your role for this step",
    "wrong_site": "Wrong site for this step",
    # identifiers (coi.core.identifiers)
    "bad_check": "Wrong check character",
    "bad_character": "Character not allowed",
    "bad_facility": "Not a facility id",
    "bad_kind": "Not a unit kind",
    "bad_sequence": "No such unit number",
    "bad_grouping": "Wrongly grouped",
    "wrong_length": "Wrong length",
    "empty": "Nothing scanned",
    "ambiguous": "Could be read two ways",
    "unknown_format": "Not a code we know",
    "product_barcode": "A product barcode",
    "din_bad_flag": "Donation number with wrong flags",
    "bad_year": "No such year",
    "bad_number": "No such case number",
    "bad_serial": "Not a case number",
    "gs1_bad_length": "GS1 data of the wrong length",
    "gs1_bad_character": "Character not allowed in GS1 data",
    "gs1_bad_check_digit": "Wrong check digit",
    "gs1_truncated": "GS1 data cut short",
    "gs1_unknown_ai": "Unknown GS1 data",
    "dl_bad_uri": "Not a valid web address",
    "dl_no_primary_key": "Web address without a product number",
}

ALARM_CODES = {
    **REFUSALS,
    "thaw_window": "Thaw window missed",
    "expired": "Unit expired",
    "expiry_near": "Unit expires soon",
    "shipment_late": "Shipment late",
    "logger_silent": "Logger silent",
    "no_temperature_data": "No temperature data",
    "excursion_single": "Temperature excursion",
    "excursion_cumulative": "Too long out of range in total",
    "stability_budget": "Stability budget used up",
    "pre_alarm": "Temperature near its limit",
    "data_gap": "Gap in the logger data",
    "no_readings": "No readings",
}

VOCABULARIES: dict[str, Mapping[str, str]] = {
    "role": ROLES,
    "site_kind": SITE_KINDS,
    "unit_kind": UNIT_KINDS,
    "case_state": CASE_STATES,
    "unit_state": UNIT_STATES,
    "step": STEPS,
    "shipment_state": SHIPMENT_STATES,
    "leg": LEGS,
    "alarm_state": ALARM_STATES,
    "severity": SEVERITIES,
    "alarm_kind": ALARM_KINDS,
    "alarm_code": ALARM_CODES,
    "outcome": OUTCOMES,
    "refusal": REFUSALS,
}


def plain(code: str) -> str:
    """A code nobody named yet, readable: underscores as spaces."""
    return code.replace("_", " ")


def words(code: str | None, vocabulary: str, titles: Mapping[str, str] | None = None) -> str:
    """`code` in the words of `vocabulary` ("role", "case_state", "unit_state"...): "in_progress"
    as a case state is "In progress". `titles` are a route's step titles (`step_titles`): a
    step is called by its route's title where the route is known. An unknown code reads with
    its underscores as spaces; None reads as nothing."""
    if code is None:
        return ""
    if vocabulary == "step" and titles and code in titles:
        return titles[code]
    known = VOCABULARIES[vocabulary]
    if vocabulary == "unit_state" and code not in known:
        return f"after {(titles or {}).get(code) or plain(code)}"
    return known.get(code, plain(code))


def in_sentence(code: str, vocabulary: str) -> str:
    """A display name inside a sentence: lower case, but for initialisms ("QA")."""
    name = words(code, vocabulary)
    return name if name.isupper() else name[:1].lower() + name[1:]


def step_titles(route: object) -> dict[str, str]:
    """A route's step titles by step name (anything with `steps` of `name` and `title`)."""
    return {step.name: step.title for step in getattr(route, "steps", ())}


def rule_words(rule: str) -> str:
    """An alarm rule's name ("deadline.thaw_window") as people read it:
    "Deadline: Thaw window missed"."""
    kind, _, code = rule.partition(".")
    if not code:
        return words(kind, "alarm_code")
    group = ALARM_KINDS.get(kind) or {"coldchain": "Temperature", "shipment": "Shipment"}.get(
        kind, plain(kind).capitalize())
    return f"{group}: {words(code, 'alarm_code')}"


def listed(codes: list[str] | tuple[str, ...], vocabulary: str, joiner: str = "or",
           titles: Mapping[str, str] | None = None) -> str:
    """Several codes in words: "Site staff or Coordinator"."""
    names = [words(code, vocabulary, titles) for code in codes]
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {joiner} {names[-1]}"


# --- the rule that fired, in words -------------------------------------------------------

RULE_KEYS = {
    "rule": "Rule",
    "coi": "Case",
    "step": "Step",
    "after_step": "After the step",
    "after_step_at": "That step was recorded",
    "due_at": "Due by",
    "eta": "Expected by",
    "dispatched_at": "Dispatched",
    "last_reading_at": "Last reading",
    "expires_at": "Expires",
    "shipment": "Shipment",
    "leg": "Leg",
    "unit": "Unit",
    "kind": "Kind of unit",
    "profile": "Temperature profile",
    "title": "Profile",
    "max_single_excursion_minutes": "Longest excursion allowed",
    "max_cumulative_minutes": "Most time out of range allowed in total",
    "stability_budget_minutes": "Stability budget",
    "gap_intervals": "Missed readings that make a gap",
    "default_interval_minutes": "Usual reading interval",
    "interval_minutes": "Reading interval",
    "silence_minutes": "Longest silence allowed",
    "day": "Day",
    "minutes": "Minutes out of range",
    "line": "Line of the file",
    "basis": "Judged on",
    "max_hours": "Time allowed",
}
# Folded into other rows: the route's version into "Route", the limits into ranges.
_FOLDED = {"route_version", "high", "pre_high", "limit_unit"}


def rule_rows(rule: Mapping[str, object], zone: str = "UTC") -> list[tuple[str, str]]:
    """An alarm's rule (as stored with it) as rows of (what, value) in words: times in `zone`
    with the zone named, minutes as durations, a step as a sentence. Keys nobody named are
    shown with their underscores as spaces; nothing of the rule is left out."""
    rows: list[tuple[str, str]] = []
    for key, value in rule.items():
        if key in _FOLDED:
            continue
        if key == "route":
            version = rule.get("route_version")
            rows.append(("Route", f"{value} version {version}" if version is not None else str(value)))
        elif key in ("low", "pre_low", "limit"):
            rows.append(_range_row(key, rule))
        else:
            label = RULE_KEYS.get(key) or plain(key).capitalize()
            rows.append((label, _rule_value(key, value, zone)))
    return rows


def _range_row(key: str, rule: Mapping[str, object]) -> tuple[str, str]:
    if key == "limit":
        value, unit = rule.get("limit"), rule.get("limit_unit")
        if value is None:
            return "Limit crossed", "–"
        return "Limit crossed", f"{value:g} {unit or '°C'}" if isinstance(value, float | int) else str(value)
    high_key = "high" if key == "low" else "pre_high"
    low, high = rule.get(key), rule.get(high_key)
    label = "Allowed range" if key == "low" else "Warning range"
    if low is None and high is None:
        return label, "–"
    return label, f"{_number(low)} to {_number(high)} °C"


def _number(value: object) -> str:
    return "–" if value is None else f"{value:g}" if isinstance(value, float | int) else str(value)


def _rule_value(key: str, value: object, zone: str) -> str:
    if value is None:
        return "–"
    if key == "rule" and isinstance(value, str):
        return rule_words(value)
    if key == "step" and isinstance(value, Mapping):
        return step_sentence(value)
    if key in ("step", "after_step") and isinstance(value, str):
        return words(value, "step")
    if key.endswith("_minutes") and isinstance(value, float | int):
        return minutes_words(value)
    if key == "max_hours" and isinstance(value, float | int):
        return minutes_words(value * 60)
    if key.endswith("_at") or key in ("eta",):
        when = _instant(value)
        return local_text(when, zone) if when else str(value)
    if key == "coi" and isinstance(value, str):
        return coi_display(value)
    if key == "unit" and isinstance(value, str):
        return unit_display(value[:-1]) if len(value) == 17 else value
    if key == "kind" and isinstance(value, str):
        return words(value, "unit_kind")
    if key == "leg" and isinstance(value, str):
        return words(value, "leg")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | int):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{plain(str(k))}: {v}" for k, v in value.items())
    return str(value)


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def step_sentence(step: Mapping[str, object]) -> str:
    """A route step as stored in a rule, in one sentence: "Bedside infusion: Site staff at a
    treatment site scan wristband + drug product bag, 1 verifier, within 0.5 h"."""
    title = step.get("title") or words(str(step.get("name", "")), "step")
    parts: list[str] = []
    roles, kind = step.get("roles"), step.get("site_kind")
    if isinstance(roles, list | tuple) and roles:
        where = f" at a {words(str(kind), 'site_kind')}" if kind else ""
        parts.append(f"done by {listed(tuple(str(r) for r in roles), 'role')}{where}")
    scan = step.get("scan")
    if isinstance(scan, list | tuple) and scan:
        parts.append("scanning " + listed(tuple(str(s) for s in scan), "unit_kind", "and"))
    to_roles, to_kind = step.get("to_roles"), step.get("to_site_kind")
    if isinstance(to_roles, list | tuple) and to_roles:
        where = f" at a {words(str(to_kind), 'site_kind')}" if to_kind else ""
        parts.append(f"received by {listed(tuple(str(r) for r in to_roles), 'role')}{where}")
    verifiers = step.get("verifiers")
    if isinstance(verifiers, int) and verifiers:
        parts.append(f"{verifiers} verifier" + ("s" if verifiers > 1 else ""))
    hours = step.get("max_hours")
    if isinstance(hours, float | int) and hours:
        parts.append("within " + minutes_words(hours * 60))
    return f"{title}: {', '.join(parts)}" if parts else str(title)

