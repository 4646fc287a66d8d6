"""The front door: `read` looks at the first 64 KB of a logger file, picks the reader for its
format (one small reader per format, chosen by detection; the generic delimited reader when
no vendor format is recognised) and returns the Source with its readings still to be read."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
from typing import BinaryIO

from coldchain.model import ReadOptions, Source, Unreadable
from coldchain.readers import (
    berlinger,
    daily,
    delimited,
    envlogger,
    epcis,
    hobo,
    ibutton,
    rotronic,
    tinytag,
)
from coldchain.readers.common import refuse
from coldchain.readers.readings_json import read_json_readings
from coldchain.readers.text import Text, encoding_name

__all__ = ["read", "read_json_readings", "stated_logger"]

Detector = Callable[[Text], bool]
Reader = Callable[[Text, ReadOptions], Source]
NO_OPTIONS = ReadOptions()  # frozen: safe to share as the default


def _is_json(text: Text) -> bool:
    first = next((line.lstrip() for line in text.head if line.strip()), "")
    return first.startswith("{")


def _read_json(text: Text, options: ReadOptions) -> Source:
    try:
        document = json.loads(text.read_all())
    except ValueError as error:
        raise refuse(f"the file looks like JSON but is not valid JSON ({error})") from None
    except RecursionError:  # the decoder gives up on deep nesting; no logger file nests so
        raise refuse("the JSON is nested too deeply to be a logger file") from None
    if isinstance(document, dict) and "readings" in document:
        return read_json_readings(document, options=options)
    if epcis.is_epcis(document):
        return epcis.read_jsonld(document, options)
    raise refuse('the JSON is neither an EPCIS document nor readings ({"logger": ..., "readings": [...]})')


# First match wins; the order puts the most specific signatures first.
READERS: tuple[tuple[Detector, Reader], ...] = (
    (_is_json, _read_json),
    (epcis.detect_xml, epcis.read_xml),
    (berlinger.detect, berlinger.read),
    (ibutton.detect, ibutton.read),
    (envlogger.detect, envlogger.read),
    (rotronic.detect, rotronic.read),
    (tinytag.detect, tinytag.read),
    (hobo.detect, hobo.read),
    # After the vendors (whose files are readings), before the generic reader of readings.
    (daily.detect, daily.read),
)


def read(stream: BinaryIO, *, name: str = "", options: ReadOptions = NO_OPTIONS) -> Source:
    """Read a logger file. Raises Unreadable when the whole file must be refused; rows that
    cannot be read land in `source.problems` as the readings are consumed."""
    text = Text(stream, name)
    reader = next((reader for detect, reader in READERS if detect(text)), delimited.read)
    source = reader(text, options)
    if text.encoding != "utf-8":
        source.meta["encoding"] = encoding_name(text.encoding)
    if text.encoding_note:
        source.meta["encoding_note"] = text.encoding_note
    return source


# A logger id no file can state (a NUL byte makes a file binary, refused): it stands for "the
# caller knows none" in `stated_logger`, so a reader's answer tells whether the file named one.
_NONE_GIVEN = "\x00"


def stated_logger(stream: BinaryIO, *, name: str = "") -> str | None:
    """The logger serial the file states of itself, as it writes it; None when it states none,
    names several (EPCIS reports of several devices) or cannot be read (`read` says why).
    Reads the head only, and puts the stream back where it was."""
    start = stream.tell()
    # The zone is only there so that a file stating none is still looked at: no time is read.
    try:
        source = read(stream, name=name, options=ReadOptions(zone=UTC, logger_id=_NONE_GIVEN))
    except Unreadable:
        return None
    finally:
        stream.seek(start)
    return None if source.logger_id in (None, _NONE_GIVEN) else source.logger_id
