"""Logger files as the original record: their bytes kept verbatim in chunks with their
SHA-256, read back as uploaded (for download, after the request's session is closed), who may
see them (the readers of a shipment a file is linked to), a refused upload kept in the audit
trail, and the first check of a JSON readings body."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from coi.core.access import Actor
from coi.core.errors import InvalidInput, NotFound
from coi.core.filenames import storable
from coi.models import LoggerFile, LoggerFileChunk, LoggerFileLink
from coi.services import audit
from coi.services.shipments import visible_shipment

CHUNK_BYTES = 1 << 20
FILENAME_MAX = 255  # LoggerFile.filename; no file system makes longer names


def digest(stream: IO[bytes]) -> tuple[str, int]:
    """SHA-256 and size of a seekable stream, read in chunks; the stream is rewound."""
    sha, size = hashlib.sha256(), 0
    stream.seek(0)
    while chunk := stream.read(CHUNK_BYTES):
        sha.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return sha.hexdigest(), size



def record_refusal(*, session: Session, now: datetime, actor: Actor, shipment_id: int,
                   filename: str, stream: IO[bytes], reason: str) -> None:
    """Keep a refused upload in the audit trail (call after rolling the upload back)."""
    try:
        sha256, size = digest(stream)
    except (OSError, ValueError):  # a stream that cannot be read again: still log the attempt
        sha256, size = None, None
    audit.record(session=session, now=now, actor=actor, entity="logger_file", entity_id="refused",
                 action="refuse", reason=storable(reason, 2000),
                 changes={"shipment": (None, shipment_id),
                          "filename": (None, storable(filename, FILENAME_MAX)),
                          "sha256": (None, sha256), "size": (None, size)})



def store_chunks(session: Session, file: LoggerFile, stream: IO[bytes]) -> None:
    stream.seek(0)
    seq = 0
    while chunk := stream.read(CHUNK_BYTES):
        session.add(LoggerFileChunk(file_id=file.id, seq=seq, data=chunk))  # type: ignore[arg-type]
        session.flush()
        seq += 1



def raw_bytes(*, session: Session, file_id: int) -> Iterator[bytes]:
    """The file as uploaded, chunk by chunk."""
    for chunk in session.exec(select(LoggerFileChunk).where(LoggerFileChunk.file_id == file_id)
                              .order_by(col(LoggerFileChunk.seq))):
        yield chunk.data



def raw_stream(*, engine: Engine, file_id: int) -> Iterator[bytes]:
    """The file as uploaded, for a response body sent after the request's session is closed:
    the chunks are read in a session of their own, closed when the last is sent."""
    with Session(engine) as own:
        yield from raw_bytes(session=own, file_id=file_id)



def check_readings_document(body: bytes) -> None:
    """A JSON body must be an object with a list of readings before it is read as a file."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidInput(f"The body is not JSON: {error}.") from None
    except RecursionError:  # the decoder gives up on deep nesting: bad input, not a crash
        raise InvalidInput("The body is nested too deeply; send {\"logger\": \"serial\", "
                           "\"readings\": [...]}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("readings"), list):
        raise InvalidInput("Send {\"logger\": \"serial\", \"readings\": [{\"at\": ..., \"celsius\": ...}]}.",
                           [{"field": "readings", "message": "A list of readings is required."}])



def visible_file(*, session: Session, actor: Actor, file_id: int) -> LoggerFile:
    """A stored logger file, if the reader may see a shipment it is linked to; NotFound
    otherwise."""
    file = session.get(LoggerFile, file_id)
    if file is None:
        raise NotFound(f"No logger file {file_id}.")
    for shipment_id in session.exec(select(LoggerFileLink.shipment_id)
                                    .where(LoggerFileLink.file_id == file_id)):
        try:
            visible_shipment(session=session, actor=actor, shipment_id=shipment_id)
        except NotFound:
            continue
        return file
    raise NotFound(f"No logger file {file_id} that you may see.")
