"""Barcode decoders: zxing-cpp (Data Matrix, QR, Code 128 and more) always; pyzbar (QR and
linear codes) where the system library libzbar0 is installed. Both read the same picture;
each result says which decoder read it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decoder:
    name: str
    available: bool
    version: str | None
    detail: str  # what it reads, or why it is missing


@dataclass(frozen=True, slots=True)
class Symbol:
    text: str  # exactly as encoded: GS1 separators stay raw GS (0x1D) characters
    symbology: str
    decoder: str
    symbology_identifier: str | None = None  # e.g. "]d2" for GS1 Data Matrix


@cache
def _pyzbar() -> tuple[Any, str | None]:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:  # the shared library libzbar0 is missing
        return None, str(exc)
    return pyzbar, None


def available_decoders() -> list[Decoder]:

    pyzbar, why = _pyzbar()
    return [
        Decoder("zxing-cpp", True, metadata.version("zxing-cpp"),
                "Data Matrix, QR Code, Code 128 and other 1D/2D codes"),
        Decoder("pyzbar", pyzbar is not None,
                metadata.version("pyzbar") if pyzbar is not None else None,
                "QR Code and linear codes (zbar)" if pyzbar is not None
                else f"libzbar0 is not installed ({why}); decoding uses zxing-cpp alone"),
    ]


def log_availability() -> None:
    for decoder in available_decoders():
        if not decoder.available:
            log.warning("barcode decoder %s unavailable: %s", decoder.name, decoder.detail)


def decode_image(image: Image.Image) -> list[Symbol]:
    """Every symbol either decoder finds in `image`, zxing-cpp's first, without duplicates."""
    import zxingcpp

    found: list[Symbol] = []
    # Plain text mode: HRI (the default) would turn GS1 payloads into "(01)..." text.
    for result in zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain):
        found.append(Symbol(result.text, result.format.name, "zxing-cpp",
                            result.symbology_identifier or None))
    pyzbar, _why = _pyzbar()
    if pyzbar is not None:
        seen = {symbol.text for symbol in found}
        for result in pyzbar.decode(image.convert("L")):
            text = result.data.decode("utf-8", errors="replace")
            if text not in seen:
                found.append(Symbol(text, result.type, "pyzbar"))
                seen.add(text)
    return found
