"""Identifiers scanned or typed at the bench: COI identifiers, unit serials, ISBT 128 DINs,
GS1 element strings and GS1 Digital Link URIs.

Pure: standard library only, no I/O, no clock, no database. Every parser either returns a
fully validated value or raises IdentifierError with a machine code, a sentence for people and,
where it means something, the 1-based position of the offending character in the input.
A wrong check character is always a rejection, never a silent correction.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
UNIT_KIND_CODES: dict[str, str] = {"apheresis_bag": "A", "sample": "S", "drug_product_bag": "D"}

GS = "\x1d"
_VALUES = {ch: value for value, ch in enumerate(ALPHABET)}
_BASE36 = ALPHABET[:36]
_DIGITS = frozenset("0123456789")
_FACILITY_FIRST = frozenset("ABCDEFGHIJKLMNPQRSTUVWXYZ123456789")
_KIND_BY_CODE = {code: kind for kind, code in UNIT_KIND_CODES.items()}
_KIND_WORDS = "A (apheresis bag), S (sample) or D (drug product bag)"
# Not str.strip(): Python counts GS (0x1D) as whitespace and would eat a leading FNC1.
_WHITESPACE = " \t\r\n\v\f"
# Hints for letters typed where a digit belongs (O/0 is why facility ids never start with O/0).
_LOOKALIKES = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8"}
# One letter per data character: F facility first char, D facility digit, Y year digit,
# S serial, K unit kind code, N unit sequence digit.
_COI_LAYOUT = "FDDDDYYSSSSSS"
_UNIT_LAYOUT = _COI_LAYOUT + "KNN"
_DIGIT_FIELDS = {
    "D": ("bad_facility", "a facility id", "Facility ids use A-N, P-Z or 1-9 then 4 digits."),
    "Y": ("bad_year", "the year", "The year is 2 digits."),
    "N": ("bad_sequence", "the unit sequence", "The unit sequence is 2 digits, 01-99."),
}


class IdentifierError(ValueError):
    """An identifier was refused: `code` for machines, `message` (also str(err)) for people,
    `position` (1-based, in the text as given) for the character at fault where there is one."""

    def __init__(self, code: str, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return self.message


def _show(ch: str) -> str:
    # Control characters (GS above all) must be visible in a message, not printed raw.
    return repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"


def _excerpt(text: str, limit: int = 60) -> str:
    # Never echo a whole payload: it may be long, and messages end up in logs and flashes.
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _upper_ascii(text: str) -> str:
    # Only a-z: str.upper() would turn 'ß' into 'SS' and shift every position after it.
    return "".join(chr(ord(ch) - 32) if "a" <= ch <= "z" else ch for ch in text)


def _strip(text: str) -> tuple[str, int]:
    """The text without surrounding whitespace, and how many characters were cut in front."""
    stripped = text.strip(_WHITESPACE)
    return stripped, len(text) - len(text.lstrip(_WHITESPACE))


# --- MOD 37-2 ------------------------------------------------------------------------------


def _mod37_2_value(data: str) -> int:
    if not data:
        raise IdentifierError("empty", "There is no data to compute a check character for.")
    total = 0
    for index, ch in enumerate(data):
        value = _VALUES.get(ch)
        if value is None or value == 36:
            message = f"Character {index + 1} ({_show(ch)}) cannot be check-summed: MOD 37-2 "
            raise IdentifierError("bad_character", message + "data is 0-9 and A-Z.", index + 1)
        total = (total + value) * 2 % 37  # Horner form of sum(value * 2**n), n from 1 at right
    return (38 - total) % 37


def mod37_2(data: str) -> str:
    """Return the ISO/IEC 7064 MOD 37-2 check character (one of ALPHABET) for `data`.

    Appending it makes the weighted sum 1 mod 37, which catches every single substitution and
    every adjacent transposition. Raises IdentifierError "empty" for "" and "bad_character"
    (with its position) for any character outside 0-9 and A-Z, lowercase included.
    """
    return ALPHABET[_mod37_2_value(data)]


def is_reserved_facility(facility: str) -> bool:
    """True exactly for the facility ids A9990-A9999, reserved for validation and tests."""
    return len(facility) == 5 and facility.startswith("A999") and facility[4] in _DIGITS


# --- COI identifiers and unit serials -------------------------------------------------------


def _check_chars(chars: str, layout: str, pos_of: Callable[[int], int]) -> None:
    """Validate `chars` against `layout` left to right, so the first fault is the one reported."""
    for index, (ch, field) in enumerate(zip(chars, layout, strict=False)):
        pos = pos_of(index)
        if ch not in _VALUES or ch == "*":
            why = "'*' can only be a check character" if ch == "*" else "only A-Z and 0-9 are used"
            message = f"Character {pos} ({_show(ch)}) is not allowed here: {why}."
            raise IdentifierError("bad_character", message, pos)
        if field == "F" and ch not in _FACILITY_FIRST:
            message = f"Character {pos} ({_show(ch)}) cannot start a facility id: facility ids "
            message += "use A-N, P-Z or 1-9 then 4 digits (never O or 0 first)."
            raise IdentifierError("bad_facility", message, pos)
        if field in _DIGIT_FIELDS and ch not in _DIGITS:
            code, where, rule = _DIGIT_FIELDS[field]
            hint = f": use the digit {_LOOKALIKES[ch]}?" if ch in _LOOKALIKES else "."
            message = f"Character {pos} ({_show(ch)}) is not allowed in {where}{hint} {rule}"
            raise IdentifierError(code, message, pos)
        if field == "K" and ch not in _KIND_BY_CODE:
            message = f"Character {pos} ({_show(ch)}) is not a unit kind code: use {_KIND_WORDS}."
            raise IdentifierError("bad_kind", message, pos)


@dataclass(frozen=True, slots=True)
class CoiId:
    """A chain-of-identity identifier: facility (5) + year (2) + serial (6). Always valid:
    the constructor refuses malformed parts with IdentifierError."""

    facility: str
    year: str
    serial: str

    def __post_init__(self) -> None:
        parts = ((self.facility, 5, "facility"), (self.year, 2, "year"), (self.serial, 6, "serial"))
        for value, size, name in parts:
            if not isinstance(value, str) or len(value) != size:
                message = f"The {name} must be {size} characters, not {value!r}."
                raise IdentifierError(f"bad_{name}", message)
        _check_chars(self.compact, _COI_LAYOUT, lambda index: index + 1)

    @property
    def compact(self) -> str:
        """The 13 data characters, without the check character."""
        return self.facility + self.year + self.serial

    @property
    def check(self) -> str:
        """The MOD 37-2 check character over `compact`."""
        return mod37_2(self.compact)

    @property
    def text(self) -> str:
        """The 14-character form, used wherever the identifier is text or a barcode."""
        return self.compact + self.check

    @property
    def display(self) -> str:
        """The grouped form for people, e.g. 'A9998 18 123456 N'."""
        return f"{self.facility} {self.year} {self.serial} {self.check}"

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> CoiId:
        """Parse the 14-character text or the display form; lowercase letters count as
        uppercase, surrounding whitespace is ignored; anything else raises IdentifierError."""
        stripped, base = _strip(text)
        return _parse_ours(stripped, base, unit=False)[0]

    @classmethod
    def issue(cls, facility: str, year: int, number: int) -> CoiId:
        """Mint the identifier for the `number`-th case (1 to 36**6 - 1) of `facility` in
        `year` (2000-2099): the number is written in base 36 (0-9, A-Z), zero-padded to 6."""
        if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2099:
            raise IdentifierError("bad_year", f"Year {year!r} is outside 2000-2099.")
        top = 36**6 - 1
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= top:
            raise IdentifierError("bad_number", f"Case number {number!r} is outside 1-{top}.")
        digits = ""
        while number:
            number, rest = divmod(number, 36)
            digits = _BASE36[rest] + digits
        return cls(facility, f"{year % 100:02d}", digits.rjust(6, "0"))

    def unit(self, kind: str, sequence: int) -> UnitSerial:
        """The serial of unit `sequence` (1-99) of `kind` (a key of UNIT_KIND_CODES)."""
        if kind not in UNIT_KIND_CODES:
            kinds = ", ".join(UNIT_KIND_CODES)
            raise IdentifierError("bad_kind", f"Unknown unit kind {kind!r}: use one of {kinds}.")
        return UnitSerial(self, UNIT_KIND_CODES[kind], sequence)

    def isbt_din(self) -> str:
        """The ISBT 128 DIN data: '=' + the 13 data characters + flags 60-96 carrying the check."""
        return f"={self.compact}{60 + _mod37_2_value(self.compact)}"


@dataclass(frozen=True, slots=True)
class UnitSerial:
    """A unit (bag, sample) of a case; its text names the case without a lookup. Always valid."""

    coi: CoiId
    kind_code: str
    sequence: int

    def __post_init__(self) -> None:
        if not isinstance(self.coi, CoiId):
            raise TypeError("UnitSerial.coi must be a CoiId")
        if self.kind_code not in _KIND_BY_CODE:
            raise IdentifierError("bad_kind", f"Unit kind code must be {_KIND_WORDS}.")
        seq = self.sequence
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= 99:
            raise IdentifierError("bad_sequence", f"Unit sequence {seq!r} is outside 1-99.")

    @property
    def kind(self) -> str:
        """The unit kind name, e.g. 'apheresis_bag'."""
        return _KIND_BY_CODE[self.kind_code]

    @property
    def compact(self) -> str:
        """The 16 data characters: COI data + kind code + 2-digit sequence."""
        return f"{self.coi.compact}{self.kind_code}{self.sequence:02d}"

    @property
    def check(self) -> str:
        """The MOD 37-2 check character over `compact`."""
        return mod37_2(self.compact)

    @property
    def text(self) -> str:
        """The 17-character form."""
        return self.compact + self.check

    @property
    def display(self) -> str:
        """The grouped form for people, e.g. 'A9998 18 123456 A01 K'."""
        c = self.coi
        return f"{c.facility} {c.year} {c.serial} {self.kind_code}{self.sequence:02d} {self.check}"

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> UnitSerial:
        """Parse the 17-character text or the display form (same rules as CoiId.parse)."""
        stripped, base = _strip(text)
        return UnitSerial(*_parse_ours(stripped, base, unit=True))

    @classmethod
    def from_compact(cls, data: str) -> UnitSerial:
        """The unit whose 16 data characters (as stored, without check character) are `data`:
        for serials the platform holds, never for scanned text (that is `parse`)."""
        return cls.parse(data + mod37_2(data))


def _parse_ours(s: str, base: int, *, unit: bool) -> tuple[CoiId, str, int]:
    """Validate a COI identifier or unit serial (text or display form); returns the case and,
    for a unit serial, its kind code and sequence (else "" and 0)."""
    name, groups, example = (
        ("unit serial", (5, 2, 6, 3, 1), "A9998 18 123456 A01 K")
        if unit
        else ("COI identifier", (5, 2, 6, 1), "A9998 18 123456 N")
    )
    size = sum(groups)
    if not s:
        raise IdentifierError("empty", f"No {name} was given.")
    s = _upper_ascii(s)
    where = list(range(len(s)))  # where[k]: index in the input of the k-th non-space character
    shown = size
    if " " in s:
        spaces = {sum(groups[: k + 1]) + k for k in range(len(groups) - 1)}
        shown += len(spaces)
        for index, ch in enumerate(s[:shown]):
            if (index in spaces) != (ch == " "):
                want = "a space" if index in spaces else "a character, not a space"
                message = f"Character {base + index + 1} should be {want}: a {name} is grouped as"
                raise IdentifierError("bad_grouping", f"{message} {example!r}.", base + index + 1)
        where = [index for index, ch in enumerate(s) if ch != " "]
        s = s.replace(" ", "")
    if len(s) != size:
        other = {14: "a COI identifier", 17: "a unit serial", 16: "an ISBT 128 DIN"}.get(len(s))
        hint = f" (that length fits {other})" if other and not other.endswith(name) else ""
        like = example if shown > size else example.replace(" ", "")
        message = f"A {name} has {shown} characters like {like!r}, but {_excerpt(s)} has {len(s)}"
        at = base + where[size] + 1 if len(s) > size else None
        raise IdentifierError("wrong_length", f"{message}{hint}.", at)

    def pos_of(index: int) -> int:
        return base + where[index] + 1

    data, check, at = s[:-1], s[-1], pos_of(size - 1)
    _check_chars(data, _UNIT_LAYOUT if unit else _COI_LAYOUT, pos_of)
    if check not in _VALUES:
        message = f"Character {at} ({_show(check)}) cannot be a check character (0-9, A-Z, '*')."
        raise IdentifierError("bad_character", message, at)
    if unit and data[14:] == "00":
        message = "Unit sequence 00 does not exist: sequences run 01-99."
        raise IdentifierError("bad_sequence", message, pos_of(14))
    if check != (expected := mod37_2(data)):
        message = f"Check character is {check!r} but should be {expected!r} for {data}: a "
        message += f"character was misread or mistyped; re-scan or re-type the whole {name}."
        raise IdentifierError("bad_check", message, at)
    coi = CoiId(data[:5], data[5:7], data[7:13])
    return (coi, data[13], int(data[14:])) if unit else (coi, "", 0)


def _ours(s: str, base: int, *, unit: bool) -> CoiId | UnitSerial:
    coi, kind_code, sequence = _parse_ours(s, base, unit=unit)
    return UnitSerial(coi, kind_code, sequence) if unit else coi


# --- ISBT 128 -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IsbtDin:
    """An ISBT 128 donation identification number. `check_verified` is False when the flags
    (00-59) carry another ISBT meaning instead of the MOD 37-2 check."""

    coi: CoiId
    flags: str
    check_verified: bool

    @classmethod
    def parse(cls, text: str) -> IsbtDin:
        """Parse '=' + 13 data characters + 2 flag characters: flags 60-96 must carry the
        right check, 00-59 are accepted unverified, anything else is refused."""
        stripped, base = _strip(text)
        return _parse_din(stripped, base)


def _parse_din(s: str, base: int) -> IsbtDin:
    if len(s) >= 2 and not s[1].isalnum():
        message = f"ISBT 128 data structure {s[:2]!r} is not a donation identification number."
        raise IdentifierError("unknown_format", message, base + 2)
    s = _upper_ascii(s)
    if len(s) != 16:
        message = "An ISBT 128 DIN is '=' + 13 characters + 2 flag characters (16), but "
        message += f"{_excerpt(s)} has {len(s)}."
        raise IdentifierError("wrong_length", message, base + 17 if len(s) > 16 else None)
    data, flags = s[1:14], s[14:]
    _check_chars(data, _COI_LAYOUT, lambda index: base + index + 2)
    if not (set(flags) <= _DIGITS and int(flags) <= 96):
        message = f"DIN flags {flags!r} are not valid: use 00-59, or 60-96 to carry the check."
        raise IdentifierError("din_bad_flag", message, base + 15)
    expected = 60 + _mod37_2_value(data)
    if int(flags) >= 60 and int(flags) != expected:
        message = f"DIN check flags are {flags!r} but should be '{expected}' for {data}: a "
        message += "character was misread or mistyped; re-scan the DIN."
        raise IdentifierError("bad_check", message, base + 15)
    return IsbtDin(CoiId(data[:5], data[5:7], data[7:]), flags, int(flags) >= 60)


def _is_checked_din_body(body: str) -> bool:
    try:
        return _parse_din("=" + body, 0).check_verified
    except IdentifierError:
        return False


# --- GS1 ----------------------------------------------------------------------------------


class _Ai(NamedTuple):
    title: str
    kind: str  # "N" digits, "X" GS1 character set 82, "D" date YYMMDD, "T" YYMMDDHHMM
    min_len: int
    max_len: int
    check: bool = False  # ends with a GS1 mod-10 check digit


def _ai_table() -> dict[str, _Ai]:
    table = {
        "00": _Ai("SSCC", "N", 18, 18, True),
        "01": _Ai("GTIN", "N", 14, 14, True),
        "02": _Ai("GTIN of contained items", "N", 14, 14, True),
        "10": _Ai("batch/lot", "X", 1, 20),
        "11": _Ai("production date", "D", 6, 6),
        "12": _Ai("due date", "D", 6, 6),
        "13": _Ai("packaging date", "D", 6, 6),
        "15": _Ai("best before date", "D", 6, 6),
        "16": _Ai("sell by date", "D", 6, 6),
        "17": _Ai("expiry date", "D", 6, 6),
        "20": _Ai("variant", "N", 2, 2),
        "21": _Ai("serial number", "X", 1, 20),
        "22": _Ai("consumer product variant", "X", 1, 20),
        "240": _Ai("additional product id", "X", 1, 30),
        "241": _Ai("customer part number", "X", 1, 30),
        "250": _Ai("secondary serial number", "X", 1, 30),
        "254": _Ai("GLN extension", "X", 1, 20),
        "30": _Ai("variable count", "N", 1, 8),
        "37": _Ai("count of trade items", "N", 1, 8),
        "400": _Ai("customer's order number", "X", 1, 30),
        "422": _Ai("country of origin", "N", 3, 3),
        "7003": _Ai("expiry date and time", "T", 10, 10),
        "8200": _Ai("product URL", "X", 1, 70),
        "90": _Ai("internal information", "X", 1, 30),
    }
    table |= {f"41{n}": _Ai("GLN", "N", 13, 13, True) for n in range(8)}
    table |= {f"71{n}": _Ai("national reimbursement number", "X", 1, 20) for n in range(6)}
    table |= {str(ai): _Ai("company internal information", "X", 1, 90) for ai in range(91, 100)}
    # The measure families GS1 defines within 310n-369n; n is the number of decimal places.
    for first, last in ((310, 316), (320, 329), (330, 337), (340, 349), (350, 357), (360, 369)):
        for fam in range(first, last + 1):
            table |= {f"{fam}{n}": _Ai(f"measure, {n} decimals", "N", 6, 6) for n in range(10)}
    return table


_AIS = _ai_table()
# GS1 General Specifications "predefined length" prefixes: these fields need no separator.
_PREDEFINED = frozenset("00 01 02 03 04 11 12 13 14 15 16 17 18 19 20 31 32 33 34 35 36 41".split())
_CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
_GS1_SYMBOLOGIES = frozenset(["]d2", "]C1", "]Q3", "]e0", "]J1"])
_SYMBOLOGY = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_BRACKET_AI = re.compile(r"\(([0-9]{2,4})\)")


@dataclass(frozen=True, slots=True)
class Gs1Data:
    """Validated GS1 data: (AI, value) pairs in order of appearance."""

    elements: tuple[tuple[str, str], ...]
    source: str  # "element_string" (raw or bracketed) or "digital_link"
    symbology: str | None = None

    def get(self, ai: str) -> str | None:
        """The value of the first element with AI `ai`, or None."""
        return next((value for key, value in self.elements if key == ai), None)

    @property
    def gtin(self) -> str | None:
        """AI 01 as 14 digits (a shorter GTIN from a Digital Link is zero-padded)."""
        return self.get("01")

    @property
    def sscc(self) -> str | None:
        """AI 00."""
        return self.get("00")

    @property
    def batch(self) -> str | None:
        """AI 10."""
        return self.get("10")

    @property
    def serial(self) -> str | None:
        """AI 21."""
        return self.get("21")

    @property
    def expiry(self) -> datetime.date | None:
        """AI 17 as a date, DD=00 meaning the month's last day. YY is read as 20YY: GS1's
        sliding century window needs today's date, and this module reads no clock."""
        value = self.get("17")
        if value is None:
            return None
        year, month, day = 2000 + int(value[:2]), int(value[2:4]), int(value[4:])
        return datetime.date(year, month, day or calendar.monthrange(year, month)[1])


def _gs1_check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str(-total % 10)


def _validate_value(ai: str, value: str, pos_of: Callable[[int], int]) -> None:
    """Check one AI value (length, characters, check digit, date); positions via `pos_of`."""
    spec = _AIS[ai]
    label = f"AI {ai} ({spec.title})"
    if not spec.min_len <= len(value) <= spec.max_len:
        size = f"{spec.min_len}-{spec.max_len}" if spec.min_len < spec.max_len else spec.max_len
        at = pos_of(spec.max_len) if len(value) > spec.max_len else pos_of(0)
        message = f"{label} must be {size} characters long, but {_excerpt(value)} has {len(value)}."
        raise IdentifierError("gs1_bad_length", message, at)
    allowed = _CSET82 if spec.kind == "X" else _DIGITS
    for index, ch in enumerate(value):
        if ch not in allowed:
            rule = "the GS1 character set 82" if spec.kind == "X" else "digits only"
            message = f"{label} has {_show(ch)} at character {pos_of(index)}; it allows {rule}."
            raise IdentifierError("gs1_bad_character", message, pos_of(index))
    if spec.check and value[-1] != (expected := _gs1_check_digit(value[:-1])):
        message = f"{label} {value} has check digit {value[-1]} but should be {expected}: "
        message += "the number was misread or mistyped."
        raise IdentifierError("gs1_bad_check_digit", message, pos_of(len(value) - 1))
    if spec.kind in "DT":
        month, day = int(value[2:4]), int(value[4:6])
        if not 1 <= month <= 12:
            message = f"{label} {value} has month {value[2:4]}; months are 01-12."
            raise IdentifierError("gs1_bad_date", message, pos_of(2))
        # DD=00 ("end of month") is GS1's rule for YYMMDD dates, not for date-and-time.
        last_day = calendar.monthrange(2000 + int(value[:2]), month)[1]
        if day > last_day or (day == 0 and spec.kind == "T"):
            message = f"{label} {value} has day {value[4:6]}, which 20{value[:2]}-{value[2:4]} "
            raise IdentifierError("gs1_bad_date", message + "does not have.", pos_of(4))
        if spec.kind == "T" and not (int(value[6:8]) <= 23 and int(value[8:]) <= 59):
            message = f"{label} {value} has no such time of day as {value[6:]}."
            raise IdentifierError("gs1_bad_date", message, pos_of(6))


def _add(elements: list[tuple[str, str]], ai: str, value: str, pos: int) -> None:
    for known, old in elements:
        if known == ai and old != value:
            message = f"AI {ai} appears twice with different values: {_excerpt(old, 30)} and "
            raise IdentifierError("gs1_duplicate_ai", message + f"{_excerpt(value, 30)}.", pos)
    if (ai, value) not in elements:  # GS1 allows an exact repeat; keep one
        elements.append((ai, value))


def _next_ai(s: str, i: int, at: int, *, bracketed: bool) -> tuple[str, int]:
    """The AI that starts at s[i] and the index where its value starts."""
    if bracketed:
        match = _BRACKET_AI.match(s, i)
        if match is None:
            message = f"Expected '(AI)' at character {at}, found {_excerpt(s[i : i + 6])}."
            raise IdentifierError("gs1_bad_character", message, at)
        ai: str | None = match.group(1) if match.group(1) in _AIS else None
        head = match.group(0)
    else:
        ai = next((s[i : i + n] for n in (2, 3, 4) if s[i : i + n] in _AIS), None)
        head = s[i : i + 4]
    if ai is None:
        what = "a known" if head.strip("()")[:2].isdigit() else "where an"
        message = f"{_excerpt(head)} at character {at} is not {what} Application Identifier."
        raise IdentifierError("gs1_unknown_ai", message, at)
    start = i + len(ai) + (2 if bracketed else 0)
    while bracketed and s[start : start + 1] == " ":
        start += 1  # printed labels often read "(01) 0950..."
    return ai, start


def _from(first: int) -> Callable[[int], int]:
    """Map an index in a value onto a 1-based position in the input."""
    return lambda k: first + k + 1


def _parse_elements(s: str, base: int, symbology: str | None, *, bracketed: bool) -> Gs1Data:
    """A raw element string ('01...<GS>10...') or its bracketed human-readable form
    ('(01)...(10)...', spaces allowed around each '(AI)'). Predefined-length fields run for
    their length; any other field ends at a separator (GS, or the next known '(AI)') or at the
    end of the data."""
    i = 1 if s.startswith(GS) and not bracketed else 0  # FNC1 first, as some scanners send it
    if i >= len(s):
        raise IdentifierError("empty", "The GS1 data is empty.")
    stop = "(" if bracketed else GS
    elements: list[tuple[str, str]] = []
    while i < len(s):
        if bracketed and s[i] == " ":
            i += 1  # GS1 values never contain spaces, so these can only be layout
            continue
        at = base + i + 1
        if s[i] == GS and not bracketed:
            if i == len(s) - 1:
                break  # a trailing separator carries nothing
            message = f"A separator (GS) at character {at} comes where an AI must start."
            raise IdentifierError("gs1_bad_character", message, at)
        ai, start = _next_ai(s, i, at, bracketed=bracketed)
        spec = _AIS[ai]
        if ai[:2] in _PREDEFINED:
            end = start + spec.max_len
            got = len(s[start:end].split(stop)[0])
            if got < spec.max_len:
                message = f"AI {ai} ({spec.title}) needs {spec.max_len} characters but only {got} "
                at = base + start + got + 1
                raise IdentifierError("gs1_truncated", message + "follow it.", at)
            nxt = end + 1 if s[end : end + 1] == GS else end  # a needless GS is tolerated
        elif bracketed:  # values may hold '(' themselves: only a known '(AI)' ends a field
            ends = (m.start() for m in _BRACKET_AI.finditer(s, start) if m.group(1) in _AIS)
            nxt = next(ends, len(s))
            end = len(s[:nxt].rstrip(" "))
        else:
            end = s.find(GS, start)
            end, nxt = (len(s), len(s)) if end < 0 else (end, end + 1)
        _validate_value(ai, s[start:end], _from(base + start))
        _add(elements, ai, s[start:end], at)
        i = nxt
    return Gs1Data(tuple(elements), "element_string", symbology)


# --- GS1 Digital Link ---------------------------------------------------------------------

_DL_QUALIFIERS = {"01": ("22", "10", "21"), "00": (), "414": ("254",)}
_DL_PATH_ONLY = {ai for key, qualifiers in _DL_QUALIFIERS.items() for ai in (key, *qualifiers)}


def _dl_value(raw: str, at: int) -> tuple[str, Callable[[int], int]]:
    """Percent-decode a URI value; positions map exactly only when nothing was decoded."""
    try:
        value = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return raw, _from(at)  # left encoded, the '%' fails the character set check
    return value, _from(at) if value == raw else (lambda k: at + 1)


def _parse_digital_link(s: str, base: int, symbology: str | None) -> Gs1Data:
    bad = next((i for i, ch in enumerate(s) if not ch.isprintable() or ch.isspace()), None)
    if bad is not None:  # urlsplit silently drops tabs and newlines, shifting every position
        message = f"Character {base + bad + 1} of the URI is a space or control character."
        raise IdentifierError("dl_bad_uri", message, base + bad + 1)
    try:
        parts = urlsplit(s)
    except ValueError as exc:
        raise IdentifierError("dl_bad_uri", f"{_excerpt(s)} is not a valid URI.") from exc
    if not parts.netloc:
        raise IdentifierError("dl_bad_uri", f"{_excerpt(s)} has no host name.")
    at = len(parts.scheme) + 3 + len(parts.netloc)  # index of the path in s
    segments: list[tuple[str, int]] = []
    for segment in parts.path.split("/"):
        segments.append((segment, at))
        at += len(segment) + 1
    if len(segments) > 1 and not segments[-1][0]:
        segments.pop()  # a trailing slash
    key_at = next((k for k, (seg, _) in enumerate(segments[:-1]) if seg in _DL_QUALIFIERS), None)
    if key_at is None:
        message = f"{_excerpt(s)} has no GS1 primary key in its path: expected /01/ (GTIN), "
        raise IdentifierError("dl_no_primary_key", message + "/00/ (SSCC) or /414/ (GLN).")
    path = segments[key_at:]
    if len(path) % 2:
        message = f"The path ends with {path[-1][0][:20]!r} without a value after it."
        raise IdentifierError("dl_bad_path", message, base + path[-1][1] + 1)
    key, rank = path[0][0], -1
    order = _DL_QUALIFIERS[key]
    elements: list[tuple[str, str]] = []
    for pair, ((ai, ai_at), (raw, raw_at)) in enumerate(zip(path[::2], path[1::2], strict=True)):
        if pair and ai not in order and ai not in _DL_PATH_ONLY:
            known = ai in _AIS
            code = "dl_misplaced_ai" if known else "dl_bad_path"
            where = "put it in the query" if known else "it is not an AI"
            message = f"Path segment {ai[:20]!r} is not a key qualifier of AI {key}: {where}."
            raise IdentifierError(code, message, base + ai_at + 1)
        if pair:
            if ai not in order or order.index(ai) <= rank:
                qualifiers = "".join(f"/{q}/..." for q in order)
                message = f"AI {ai} is out of order: after /{key}/... the qualifiers go "
                message += f"{qualifiers}, each at most once."
                raise IdentifierError("dl_bad_order", message, base + ai_at + 1)
            rank = order.index(ai)
        value, pos_of = _dl_value(raw, base + raw_at)
        if ai == "01" and len(value) in (8, 12, 13) and set(value) <= _DIGITS:
            value = value.rjust(14, "0")  # GTIN-8/12/13 are written unpadded in URIs
        _validate_value(ai, value, pos_of)
        _add(elements, ai, value, base + ai_at + 1)
    at = s.index("?") + 1 if parts.query else 0
    for item in parts.query.split("&"):
        name, _, raw = item.partition("=")
        if name.isdigit() and name.isascii():  # other parameters (linkType...) are not GS1 data
            if name not in _AIS:
                message = f"Query parameter {name[:8]} is not a known Application Identifier."
                raise IdentifierError("gs1_unknown_ai", message, base + at + 1)
            if name in _DL_PATH_ONLY:
                message = f"AI {name} is a key or key qualifier: it goes in the path, not the query"
                raise IdentifierError("dl_misplaced_ai", message + ".", base + at + 1)
            value, pos_of = _dl_value(raw, base + at + len(name) + 1)
            _validate_value(name, value, pos_of)
            _add(elements, name, value, base + at + 1)
        at += len(item) + 1
    return Gs1Data(tuple(elements), "digital_link", symbology)


# --- format detection ---------------------------------------------------------------------

ScannedIdentifier = CoiId | UnitSerial | IsbtDin | Gs1Data

_TRIED = (
    "tried COI identifier (14 characters or 'A9998 18 123456 N'), unit serial (17 characters), "
    "ISBT 128 DIN ('=' + 15), GS1 element string (symbology identifier, '(AI)', FNC1, or AI "
    "00/01/02 first) and GS1 Digital Link (https://...)"
)


# Retail barcodes by their number of digits (GS1 General Specifications 2.1); a GTIN-14 (ITF-14
# on cartons) starts with its packaging level, which is 0-8, but only a leading 0 keeps it
# apart from our all-digit identifiers (which never start with 0).
_WRISTBAND = "patient's wristband"
_PRODUCT_BARCODES = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13", 14: "GTIN-14"}


def _product_barcode(s: str, symbology: str | None) -> str | None:
    """The name of the retail barcode `s` is (digits only, with a right GS1 check digit, or
    sent by a scanner as EAN/UPC), else None."""
    if not (s.isascii() and s.isdigit()) or len(s) not in _PRODUCT_BARCODES:
        return None
    if symbology in ("]E0", "]E4"):  # the scanner said EAN/UPC: no need to guess
        return _PRODUCT_BARCODES[len(s)]
    if symbology is not None or (len(s) == 14 and s[0] != "0"):
        return None
    return _PRODUCT_BARCODES[len(s)] if _gs1_check_digit(s[:-1]) == s[-1] else None


def foreign_description(parsed: ScannedIdentifier) -> str:
    """What a code that is valid but not one of ours is, in a sentence for the scanner."""
    if isinstance(parsed, IsbtDin):
        what = f"an ISBT 128 donation number (DIN {parsed.coi.display}) of a blood establishment"
    elif isinstance(parsed, Gs1Data):
        keys = [f"{name} {parsed.get(ai)}" for ai, name in (("01", "GTIN"), ("00", "SSCC"),
                                                            ("10", "batch"), ("21", "serial"))
                if parsed.get(ai)]
        what = f"a GS1 barcode ({', '.join(keys) or 'no product number'})"
    else:
        return "This is one of our identifiers."
    return f"This is {what}, not one of our labels: scan the COI label on the unit or the {_WRISTBAND}."


def parse_scan(text: str) -> ScannedIdentifier:
    """Parse text as a scanner or a keyboard produced it.

    Surrounding whitespace (a trailing CR/LF included) is ignored. The format is decided from
    the shape alone and only that format's parser runs, so a corrupted identifier of one format
    is never accepted as another: '=' -> ISBT DIN; http(s):// -> GS1 Digital Link; a GS1
    symbology identifier, '(', FNC1 (GS) first, or a digit string starting with 0 (AIs
    00/01/02; our identifiers never start with 0) or holding a GS -> GS1 element string;
    but 14 or 17 characters (unless FNC1 + 0 leads), or a grouped form with spaces -> CoiId
    or UnitSerial. Other symbology identifiers (']C0', ']d1', ']Q1'...) are stripped and the
    rest read as anything but a GS1 element string. A 16-character text that would be a
    check-verified DIN with '=' first is refused as "ambiguous". A wrong check character is
    always a rejection ("bad_check"); anything unrecognised raises
    IdentifierError("unknown_format") naming the formats tried.
    """
    stripped, base = _strip(text)
    return _dispatch(stripped, base, None)


def _dispatch(s: str, base: int, symbology: str | None) -> ScannedIdentifier:
    if not s:
        raise IdentifierError("empty", "Nothing was scanned.")
    if symbology is None and len(s) == 16 and s[0] != "=" and _is_checked_din_body(s[1:]):
        # One keystroke from a valid DIN ('=' read as '0', ']' or GS): refuse rather than guess.
        message = f"{_excerpt(s)} would be a valid ISBT 128 DIN if character {base + 1} were '=': "
        message += "re-scan it, or type GS1 data in the '(01)...' form."
        raise IdentifierError("ambiguous", message, base + 1)
    gs1_ok = symbology is None or symbology in _GS1_SYMBOLOGIES
    is_uri = s[:8].lower().startswith(("http://", "https://"))
    if s.startswith("]") and symbology is None:
        if not _SYMBOLOGY.match(s):
            message = f"{_excerpt(s[:3])} is not a symbology identifier."
            raise IdentifierError("unknown_format", message, base + 1)
        if s[:3] in _GS1_SYMBOLOGIES and not s[3:].lower().startswith(("http://", "https://")):
            return _parse_elements(s[3:], base + 3, s[:3], bracketed=False)
        return _dispatch(s[3:], base + 3, s[:3])
    product = _product_barcode(s, symbology)
    if product:
        message = f"This is a product barcode ({product}), not one of our labels: scan the COI "
        raise IdentifierError("product_barcode", f"{message}label on the unit or the {_WRISTBAND}.")
    if s.startswith("="):
        return _parse_din(s, base)
    if is_uri:
        return _parse_digital_link(s, base, symbology)
    if s.startswith("(") and gs1_ok:
        return _parse_elements(s, base, symbology, bracketed=True)
    if " " in s:
        letters = len(s.replace(" ", ""))
        if 12 <= letters <= 19:
            return _ours(s, base, unit=letters > 15)
    elif len(s) in (14, 17) and not s.startswith(GS + "0"):
        # Ours unless FNC1 + AI 00/01/02 leads: no bare element string starting with 0 has
        # these lengths, and reading other digit strings as GS1 would let a corrupted
        # identifier pass as a batch (AI 10) or a serial (AI 21).
        return _ours(s, base, unit=len(s) == 17)
    elif gs1_ok and (s[0] in (GS, "0") or (s[0] in _DIGITS and GS in s)):
        return _parse_elements(s, base, symbology, bracketed=False)
    elif 12 <= len(s) <= 19 and s.isalnum() and s.isascii() and s[0] != "0":
        return _ours(s, base, unit=len(s) > 15)  # a near miss: say which length
    after = f" after symbology identifier {symbology}" if symbology else ""
    message = f"{_excerpt(s)}{after} is not a recognised identifier: {_TRIED}."
    raise IdentifierError("unknown_format", message)
