"""Bytes to numbered text lines, with the decoding rules every reader shares.

UTF-8 (with or without a byte-order mark) and UTF-16 with a byte-order mark are decoded as
such. A line that is not UTF-8 is taken as Windows-1252 when its non-ASCII bytes are all sign
bytes real exports use (degree, masculine ordinal, micro, plus-minus, superscript two and
three). A file whose first 64 KB hold other bytes that are not UTF-8 is in a legacy 8-bit
encoding: charset-normalizer names the encodings that fit it best, and the file is decoded
when they all read those 64 KB alike (as Windows-1250 and -1252 read 'ü' and '°'); when they
disagree ('è' in one is 'č' in another) it is refused naming the byte and line, never
guessed. Binary files, PDFs and office documents are refused up front.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

from coldchain.model import Problem, Unreadable

SNIFF_BYTES = 64 * 1024  # how much of the file detection looks at
CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
SIGN_BYTES = frozenset(b"\xb0\xba\xb5\xb1\xb2\xb3")  # ° º µ ± ² ³ in Windows-1252

_NOT_TEXT = (
    (b"%PDF", "this is a PDF report, not a text export: upload the logger's text or CSV export"),
    (b"PK\x03\x04", "this is a ZIP archive or an Excel workbook, not a text export: export the "
                    "readings as CSV and upload that"),
    (b"\xd0\xcf\x11\xe0", "this is an Excel (.xls) or other Office file, not a text export: export the "
                          "readings as CSV and upload that"),
)
_EMPTY = "the file is empty: upload the logger's export"
_BINARY = ("this is a binary file, not a text export (it contains NUL bytes): upload the logger's text "
           "or CSV export, saved as UTF-8")


class Text:
    """A text file being read: the lines in its first 64 KB decoded at once (`head`, for
    detection), the rest decoded as `lines()` reaches them."""

    def __init__(self, stream: BinaryIO, name: str = "") -> None:
        first = _read_head(stream)
        if not first:
            raise _refused(name, _EMPTY)
        for magic, why in _NOT_TEXT:
            if first.startswith(magic):
                raise _refused(name, why)
        chunks = _chunks(first, stream)
        if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            chunks = _utf16_to_utf8(chunks)
        elif b"\x00" in first:
            raise _refused(name, _BINARY)
        self.encoding, self.encoding_note = "utf-8", None
        if not first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF8)) and \
                not _utf8_or_signs(first):
            self.encoding, self.encoding_note = legacy_encoding(first)
            chunks = _recoded(chunks, self.encoding)
        self._lines = _text_lines(chunks)
        self.head: list[str] = []
        size = 0
        self.complete = True  # the head holds the whole file
        for line in self._lines:
            self.head.append(line)
            size += len(line) + 1
            if size >= SNIFF_BYTES:
                self.complete = False
                break
        if self.complete and not any(line.strip() for line in self.head):
            raise _refused(name, _EMPTY)
        self._used = False

    def lines(self) -> Iterator[tuple[int, str]]:
        """Every line from the first, numbered from 1, without its line ending. Once only."""
        if self._used:
            raise RuntimeError("the lines of a file can be read once")
        self._used = True
        return enumerate(chain(self.head, self._lines), 1)

    def read_all(self) -> str:
        """The whole text, lines joined with newlines (for documents parsed in one piece)."""
        return "\n".join(line for _, line in self.lines())


def _refused(name: str, why: str) -> Unreadable:
    return Unreadable(Problem(None, None, f"{name}: {why}" if name else why))


def _read_head(stream: BinaryIO) -> bytes:
    parts, size = [], 0
    while size < SNIFF_BYTES:
        chunk = stream.read(SNIFF_BYTES - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _chunks(first: bytes, stream: BinaryIO) -> Iterator[bytes]:
    yield first
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def _whole_lines(head: bytes) -> bytes:
    """The head up to its last line ending (the 64 KB may end inside a character)."""
    cut = head.rfind(b"\n")
    return head[:cut] if cut >= 0 else head


def _utf8_or_signs(head: bytes) -> bool:
    """Every line of the head is UTF-8, or has no other non-ASCII bytes than sign bytes."""
    try:
        _whole_lines(head).decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return True
    for raw in _whole_lines(head).split(b"\n"):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            if any(byte >= 0x80 and byte not in SIGN_BYTES for byte in raw):
                return False
    return True


# The encodings a legacy export can be in: the Windows ANSI code pages that logger software on
# a PC writes, and the ISO-8859 sets of Western and Central Europe. DOS and classic-Mac code
# pages are left out: charset-normalizer finds them as plausible as the others for a short
# file, and each reads the degree byte as something else ('ḞC', 'įC').
LEGACY_ENCODINGS = frozenset({f"cp{number}" for number in range(1250, 1259)} |
                             {"latin_1", "iso8859_2", "iso8859_15"})


def legacy_encoding(head: bytes) -> tuple[str, str | None]:
    """The 8-bit encoding of a head that is not UTF-8, and a note when it is not certain: the
    best fit charset-normalizer finds among LEGACY_ENCODINGS, when every encoding that fits as
    well reads the head the same, or differs only in which letter a byte is ('è' in
    Windows-1252, 'č' in Windows-1250: a word of a header or a note, never a number, a time,
    a sign or a unit, so nothing read from the file changes; the note says so). Otherwise
    Unreadable naming the first byte (and its line) that they read differently."""
    from charset_normalizer import from_bytes  # here: only files that are not UTF-8 pay for it

    body = _whole_lines(head)
    matches = [match for match in from_bytes(body) if match.encoding in LEGACY_ENCODINGS]
    least = min((match.chaos for match in matches), default=None)
    candidates = [match.encoding for match in matches if match.chaos == least]
    if candidates and len({body.decode(encoding, errors="replace") for encoding in candidates}) == 1:
        return candidates[0], None
    differing = {byte: {bytes([byte]).decode(encoding, errors="replace") for encoding in candidates}
                 for byte in set(body) if byte >= 0x80}
    differing = {byte: chars for byte, chars in differing.items() if len(chars) > 1}
    if candidates and differing and all(char.isalpha() for chars in differing.values() for char in chars):
        shown = "; ".join(f"'{bytes([byte]).decode(candidates[0])}' could be " + " or ".join(
            f"'{char}'" for char in sorted(chars - {bytes([byte]).decode(candidates[0])}))
            for byte, chars in sorted(differing.items()))
        return candidates[0], (f"read as {encoding_name(candidates[0])}, though "
                               f"{', '.join(encoding_name(e) for e in candidates[1:])} fits as well: only "
                               f"letters of words would differ ({shown}), no number, time or unit")
    for number, raw in enumerate(body.split(b"\n"), 1):
        for byte in raw:
            readings: dict[str, str] = {}  # how the byte reads -> the first encoding reading it so
            for encoding in candidates:
                readings.setdefault(bytes([byte]).decode(encoding, errors="replace"), encoding)
            if byte >= 0x80 and len(readings) != 1 and not all(char.isalpha() for char in readings):
                shown = ", ".join(f"'{char}' in {encoding_name(encoding)}"
                                  for char, encoding in readings.items())
                why = (f"it reads {shown}, and the file does not tell which" if shown else
                       "and no 8-bit encoding reads the file plausibly")
                raise Unreadable(Problem(number, None, f"byte 0x{byte:02X} is not UTF-8; {why}: save the "
                                         "export as UTF-8 and upload it again"))
    raise Unreadable(Problem(None, None, "the file is not UTF-8 and its encoding cannot be told: save the "
                             "export as UTF-8 and upload it again"))


def encoding_name(encoding: str) -> str:
    """An encoding as people name it: 'Windows-1252', 'ISO-8859-2', 'Latin-1'."""
    if encoding.startswith("cp"):
        return f"Windows-{encoding[2:]}"
    if encoding.startswith("iso8859_"):
        return f"ISO-8859-{encoding[8:]}"
    return {"latin_1": "Latin-1", "utf-8": "UTF-8"}.get(encoding, encoding)


def _recoded(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    """The chunks decoded from `encoding` and written as UTF-8, which the line splitter reads;
    a byte the encoding does not define refuses the file naming its line."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 0
    for chunk in chunks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as error:
            line = lines + error.object[:error.start].count(b"\n") + 1
            byte = error.object[error.start]
            why = (f"byte 0x{byte:02X} is not {encoding} like the rest of the file: save "
                   "the export as UTF-8 and upload it again")
            raise Unreadable(Problem(line, None, why)) from None
        lines += text.count("\n")
        yield text.encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


def _utf16_to_utf8(chunks: Iterator[bytes]) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-16")()
    try:
        for chunk in chunks:
            yield decoder.decode(chunk).encode("utf-8")
        yield decoder.decode(b"", final=True).encode("utf-8")
    except UnicodeDecodeError as error:
        # A UTF-16 byte-order mark followed by an odd byte count or a lone surrogate: a
        # damaged file, refused like any other undecodable text rather than a crash.
        raise Unreadable(Problem(None, None, f"the file starts as UTF-16 text but is not valid UTF-16 "
                                 f"({error.reason}): export it again, saved as UTF-8")) from None


def _text_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """The lines, without their endings. Each chunk up to its last newline is decoded at once
    when it is UTF-8 (the usual case); otherwise line by line."""
    carry = b""
    number = 1  # the number of the next line
    for index, chunk in enumerate(chunks):
        data = carry + chunk if carry else chunk
        if index == 0 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8):]
        cut = data.rfind(b"\n")
        body, carry = (data[:cut], data[cut + 1:]) if cut >= 0 else (b"", data)
        if len(carry) > MAX_LINE_BYTES:
            raise Unreadable(Problem(number + body.count(b"\n") + (cut >= 0), None,
                                     "the line is longer than 1 MB: this is not a logger export"))
        if cut >= 0:
            lines = _decode_block(body, number)
            number += len(lines)
            yield from lines
    if carry:
        yield from _decode_block(carry, number)


def _decode_block(body: bytes, number: int) -> list[str]:
    """Lines `number`, `number` + 1, ... decoded from `body` (which holds whole lines)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [decode_line(raw[:-1] if raw.endswith(b"\r") else raw, number + i)
                for i, raw in enumerate(body.split(b"\n"))]
    if "\x00" in text:
        raise Unreadable(Problem(number + text.count("\n", 0, text.index("\x00")), None, _BINARY))
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    return text.split("\n")


def decode_line(raw: bytes, number: int) -> str:
    """One line as text, or Unreadable saying which byte on which line is wrong."""
    if b"\x00" in raw:
        raise Unreadable(Problem(number, None, _BINARY))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        for byte in raw:
            if byte >= 0x80 and byte not in SIGN_BYTES:
                raise Unreadable(Problem(number, None, f"byte 0x{byte:02X} is not UTF-8 (the file is in "
                                         "another encoding, e.g. Windows-1252 or Latin-1 with accented "
                                         "text): save the export as UTF-8 and upload it again")) from None
        return raw.decode("cp1252")
