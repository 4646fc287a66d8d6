"""Barcode decoders: zxing-cpp (Data Matrix, QR, Code 128 and more) always; pyzbar (QR and
Code 128) where the system library libzbar0 is installed. Each result says which decoder read
it.

`decode_image` reads the picture as given first, and only when that reads nothing retries on
grayscale, contrast-stretched, enlarged, white-bordered, thresholded, sharpened, filtered and
slightly rotated copies, with a second zxing-cpp binarizer and with pyzbar. It never makes text
up: every result is exactly the text one decoder read in one of those pictures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import metadata
from typing import Any, cast

from PIL import Image, ImageFilter, ImageOps

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
    symbology: str  # zxing-cpp's format name: "QRCode", "DataMatrix", "Code128"...
    decoder: str
    symbology_identifier: str | None = None  # e.g. "]d2" for GS1 Data Matrix


# What pyzbar is asked for, and the zxing-cpp name each is reported under (so that the same
# symbol read by both is one result). zbar's other linear readers add little to zxing-cpp's,
# and some (Interleaved 2 of 5, Codabar, Code 39) have no mandatory check character: a smudge
# can come out as another plausible number. Code 128 stays for ISBT 128 bag labels.
_PYZBAR_SYMBOLOGIES = {"QRCODE": "QRCode", "CODE128": "Code128"}

# The symbologies the retries look for, unless the caller names others. Every retry is one more
# chance to misread a damaged symbol, so they are limited to symbologies whose error correction
# or check characters catch misreads; Code 39, Codabar, ITF and the like are read on the first
# attempt only.
_RETRY_FORMATS = ("AllMatrix", "Code128", "Code93", "EANUPC", "DataBar")

# Image modes zxing-cpp reads directly; others (e.g. "LAB") get the grayscale copy instead.
_ZXING_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F",
                "I;16", "I;16B", "I;16L"}

# Retries work on a copy no longer than this: on a 40-megapixel upload each retry would
# otherwise take seconds, and the first attempt has already searched the full resolution.
_RETRY_MAX_SIDE = 2048
# Pictures no longer than this are also retried enlarged: phone crops and low-resolution cameras
# give symbols of two or three pixels per module, too few for the detectors.
_UPSCALE_MAX_SIDE = 1024


@cache
def _pyzbar() -> tuple[Any, str | None]:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:  # the shared library libzbar0 is missing
        return None, str(exc)
    return pyzbar, None


def available_decoders() -> list[Decoder]:
    """zxing-cpp, always available, and pyzbar, unavailable (saying why) without libzbar0."""
    pyzbar, why = _pyzbar()
    return [
        Decoder("zxing-cpp", True, metadata.version("zxing-cpp"),
                "Data Matrix, QR Code, Code 128 and other 1D/2D codes"),
        Decoder("pyzbar", pyzbar is not None,
                metadata.version("pyzbar") if pyzbar is not None else None,
                "QR Code and Code 128 (zbar)" if pyzbar is not None
                else f"libzbar0 is not installed ({why}); decoding uses zxing-cpp alone"),
    ]


def log_availability() -> None:
    """Log a warning for each decoder that cannot be used."""
    for decoder in available_decoders():
        if not decoder.available:
            log.warning("barcode decoder %s unavailable: %s", decoder.name, decoder.detail)


def decode_image(image: Image.Image, *, expect: Collection[str] = ()) -> list[Symbol]:
    """Every symbol read in `image`, in the order read (zxing-cpp's first when both read), no
    (text, symbology) pair twice; [] when nothing could be read. Each text is exactly what a
    decoder read: GS1 and ISO/IEC 15434 separators stay raw GS, RS and EOT characters.

    The first attempt is zxing-cpp on `image` as given, so this reads everything zxing-cpp
    alone reads, and if that reads anything it is the answer: one decoder call for a clean
    picture. Otherwise it retries on processed copies and stops at the first attempt that reads
    something. `expect` names the symbologies the caller needs (zxing-cpp names: "QRCode",
    "DataMatrix"...): then it goes on until one of each has been read or the attempts run out,
    later attempts looking only for those still missing. ValueError for a name zxing-cpp does
    not know."""
    import zxingcpp

    wanted = set(expect)
    unknown = sorted(name for name in wanted if not hasattr(zxingcpp.BarcodeFormat, name))
    if unknown:
        raise ValueError(f"unknown symbologies {unknown}: use zxing-cpp names such as 'QRCode'")
    found: dict[tuple[str, str], Symbol] = {}
    for number, (what, attempt) in enumerate(_attempts(image), start=1):
        for symbol in attempt(wanted - {symbology for _text, symbology in found}):
            if (symbol.text, symbol.symbology) not in found:
                found[symbol.text, symbol.symbology] = symbol
                log.debug("attempt %d (%s) read a %s", number, what, symbol.symbology)
        if found and not wanted - {symbology for _text, symbology in found}:
            break
    return list(found.values())


# One decoder, one setting, one picture. The argument is the set of symbologies still missing
# (empty: anything will do); the result is what was read.
_Attempt = Callable[[set[str]], list[Symbol]]


def _attempts(image: Image.Image) -> Iterator[tuple[str, _Attempt]]:
    """(description, attempt) pairs, cheapest and likeliest first. A generator, so that no copy
    of the picture is made unless every attempt before it has come back empty-handed."""
    import zxingcpp

    local, histogram = zxingcpp.Binarizer.LocalAverage, zxingcpp.Binarizer.GlobalHistogram
    copies = _Copies(image)
    if image.mode in _ZXING_MODES:
        yield "zxing-cpp on the picture as given", _zxing(lambda: image, local, first=True)
    if copies.had_alpha or image.mode not in _ZXING_MODES:
        # Transparent pixels are often black underneath, and zxing-cpp ignores alpha.
        yield "zxing-cpp on grayscale over white", _zxing(
            lambda: copies.gray, local, first=image.mode not in _ZXING_MODES)
    yield "zxing-cpp, global binarizer, on grayscale", _zxing(lambda: copies.gray, histogram)
    yield "pyzbar on grayscale", _zbar(lambda: copies.gray)
    for name, make, binary in copies.processed():
        picture = _once(make)
        # The local binarizer copes with uneven light; the global one with modules that are
        # large next to the local window. On a black-and-white copy they would agree.
        yield f"zxing-cpp on {name}", _zxing(picture, local)
        if not binary:
            yield f"zxing-cpp, global binarizer, on {name}", _zxing(picture, histogram)
        yield f"pyzbar on {name}", _zbar(picture)


def _once(make: Callable[[], Image.Image]) -> Callable[[], Image.Image]:
    """`make`, called on first use only: the attempts on one copy share it."""
    made: list[Image.Image] = []

    def picture() -> Image.Image:
        if not made:
            made.append(make())
        return made[0]
    return picture


class _Copies:
    """Processed copies of one picture, each made on first use."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.had_alpha = image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info)

    @cached_property
    def gray(self) -> Image.Image:
        """8-bit grayscale, with transparency laid on white (the paper of a label)."""
        if self.had_alpha:
            rgba = self.image.convert("RGBA")
            paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            paper.alpha_composite(rgba)
            return paper.convert("L")
        if self.image.mode in ("I", "F") or self.image.mode.startswith("I;16"):
            # Pillow clips these to 0..255 rather than scaling them: stretch the range first.
            wide = self.image.convert("F")
            low, high = cast(tuple[float, float], wide.getextrema())
            scale = 255 / (high - low) if high > low else 1.0
            return wide.point(lambda value: (value - low) * scale).convert("L")
        try:
            return self.image.convert("L")
        except ValueError:  # no conversion (e.g. from "LAB"): the first band is the lightness
            return self.image.getchannel(0).convert("L")

    @cached_property
    def work(self) -> Image.Image:
        """`gray`, shrunk if need be so that its longer side is at most _RETRY_MAX_SIDE."""
        factor = _RETRY_MAX_SIDE / max(self.gray.size)
        if factor >= 1:
            return self.gray
        size = (max(1, round(self.gray.width * factor)), max(1, round(self.gray.height * factor)))
        return self.gray.resize(size, Image.Resampling.LANCZOS)

    def processed(self) -> Iterator[tuple[str, Callable[[], Image.Image], bool]]:
        """(description, maker, is black and white) for each processed copy, in trying order."""
        small = max(self.image.size) <= _UPSCALE_MAX_SIDE
        yield "contrast-stretched", lambda: ImageOps.autocontrast(self.work, cutoff=1), False
        if small:
            yield "2x enlarged (Lanczos)", lambda: _enlarged(self.work, 2, Image.Resampling.LANCZOS), False
        # A symbol cropped tight, or printed against text, has lost the quiet zone it needs.
        yield "white-bordered", lambda: ImageOps.expand(
            self.work, border=max(8, max(self.work.size) // 8), fill=255), False
        yield "Otsu-thresholded", lambda: _otsu(self.work), True
        yield "sharpened", lambda: self.work.filter(
            ImageFilter.UnsharpMask(radius=2, percent=150, threshold=3)), False
        if small:
            yield "2x enlarged and Otsu-thresholded", lambda: _otsu(
                _enlarged(self.work, 2, Image.Resampling.LANCZOS)), True
            yield "3x enlarged (nearest)", lambda: _enlarged(self.work, 3, Image.Resampling.NEAREST), False
        yield "median-filtered", lambda: self.work.filter(ImageFilter.MedianFilter(3)), False  # speckle
        # Skewed linear codes; the white corners also add a quiet zone.
        yield "rotated 15 degrees", lambda: _rotated(self.work, 15), False
        yield "rotated -15 degrees", lambda: _rotated(self.work, -15), False


def _enlarged(image: Image.Image, factor: int, resample: Image.Resampling) -> Image.Image:
    """`image`, `factor` times as wide and as high."""
    return image.resize((image.width * factor, image.height * factor), resample)


def _rotated(image: Image.Image, degrees: int) -> Image.Image:
    """`image` turned `degrees` anticlockwise, whole, the uncovered corners white."""
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def _otsu(gray: Image.Image) -> Image.Image:
    """Black and white, split at the level that best separates the histogram's dark and light
    pixels (Otsu's method)."""
    histogram = gray.histogram()
    total = sum(histogram)
    grand = sum(level * count for level, count in enumerate(histogram))
    below = below_sum = 0
    best, threshold = -1.0, 127
    for level, count in enumerate(histogram):
        below += count
        below_sum += level * count
        above = total - below
        if below == 0 or above == 0:
            continue
        spread = below * above * (below_sum / below - (grand - below_sum) / above) ** 2
        if spread > best:
            best, threshold = spread, level
    return gray.point(lambda value: 255 if value > threshold else 0)


def _zxing(picture: Callable[[], Image.Image], binarizer: Any, *, first: bool = False) -> _Attempt:
    """An attempt with zxing-cpp. It looks for the symbologies still missing if the caller named
    any, else for every symbology on the first attempt and for _RETRY_FORMATS on retries."""
    def attempt(missing: set[str]) -> list[Symbol]:
        import zxingcpp

        wanted = missing or (set() if first else set(_RETRY_FORMATS))
        formats = [getattr(zxingcpp.BarcodeFormat, name) for name in sorted(wanted)]
        # Plain text: HRI (the default) would turn GS1 payloads into "(01)..." and drop the GS.
        results = zxingcpp.read_barcodes(
            picture(), formats=zxingcpp.BarcodeFormats(formats), text_mode=zxingcpp.TextMode.Plain,
            binarizer=binarizer, try_rotate=True, try_downscale=True, try_invert=True)
        # Some settings yield placeholder results (valid False, no format, no text): not reads.
        return [Symbol(result.text, result.format.name, "zxing-cpp",
                       result.symbology_identifier or None)
                for result in results if result.valid and result.format.name]
    return attempt


def _zbar(picture: Callable[[], Image.Image]) -> _Attempt:
    """An attempt with pyzbar, when libzbar0 is installed and a symbology it reads is wanted."""
    def attempt(missing: set[str]) -> list[Symbol]:
        pyzbar, _why = _pyzbar()
        asked = [name for name, ours in _PYZBAR_SYMBOLOGIES.items() if not missing or ours in missing]
        if pyzbar is None or not asked:
            return []
        symbols = []
        for result in pyzbar.decode(picture(), symbols=[pyzbar.ZBarSymbol[name] for name in asked]):
            text = _trusted_zbar_text(result.data)
            if text is not None:
                symbols.append(Symbol(text, _PYZBAR_SYMBOLOGIES[result.type], "pyzbar"))
        return symbols
    return attempt


def _trusted_zbar_text(data: bytes) -> str | None:
    """The text zbar read if it is ASCII, else None: zbar hands back UTF-8 it has converted from
    the symbol's bytes, guessing the character set when the symbol does not declare one, and it
    guesses wrong (Shift_JIS QR codes come back as unrelated Chinese characters). ASCII reads
    are the same whatever the guess. zxing-cpp follows the declared character set instead."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        log.info("pyzbar read %d bytes of non-ASCII text in a guessed character set; ignored",
                 len(data))
        return None
