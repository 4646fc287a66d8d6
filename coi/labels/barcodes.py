"""Barcode symbols as module matrices: a square ECC 200 Data Matrix (zxing-cpp) and a QR code
at error correction M (qrcode). Geometry only: where a symbol goes and how big a module is
are the layout's business, so the same matrix can be painted into a PNG and described to a
Zebra printer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from PIL import Image

if TYPE_CHECKING:
    from typing_extensions import Buffer

DARK = 0  # module values in Symbol.modules, as in an 8-bit grey image
LIGHT = 255


class SymbolTooLong(ValueError):
    """The text cannot be encoded in any symbol of the symbology at all."""


@dataclass(frozen=True, slots=True)
class Symbol:
    """One barcode symbol without quiet zone: `rows` x `cols` modules, row-major in `modules`
    (DARK or LIGHT per module). `version` is the QR version (None for Data Matrix)."""

    symbology: str  # "DataMatrix" or "QRCode"
    text: str
    rows: int
    cols: int
    modules: bytes
    version: int | None = None

    def image(self, module: int) -> Image.Image:
        """The symbol as a mode-"1" image, `module` pixels per module, sharp edges, no quiet
        zone: exactly (cols * module) x (rows * module) pixels."""
        grey = Image.frombytes("L", (self.cols, self.rows), self.modules)
        # NEAREST keeps every module a whole block of identical pixels; anything smoother
        # would grey the edges and the threshold below would shift them.
        scaled = grey.resize((self.cols * module, self.rows * module), Image.Resampling.NEAREST)
        return scaled.convert("1", dither=Image.Dither.NONE)


def datamatrix(text: str) -> Symbol:
    """A square ECC 200 Data Matrix encoding `text` exactly (the smallest square symbol that
    holds it). Raises SymbolTooLong for text no Data Matrix can hold, ValueError for ''."""
    import zxingcpp  # imported on use: importing the labels package must stay cheap

    if not text:
        raise ValueError("a Data Matrix needs at least one character")
    try:
        # Square, not the 8x32 rectangle zxing prefers for short text: square symbols are
        # what every hand scanner at the bench is tuned for, and ^BXN prints them the same.
        barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix, forceSquare=True)
    except ValueError as exc:
        raise SymbolTooLong(f"no Data Matrix holds this {len(text)}-character text ({exc})") from exc
    image = barcode.to_image(scale=1, add_quiet_zones=False)  # one pixel per module
    rows, cols = image.shape
    # The stubs do not declare zxingcpp.Image a buffer; it is one (0 dark, 255 light).
    return Symbol("DataMatrix", text, rows, cols, bytes(cast("Buffer", image)))


def qr(text: str) -> Symbol:
    """A model 2 QR code at error correction M encoding `text` exactly, in the smallest version
    that holds it (uppercase URLs go in alphanumeric mode, the densest that fits them).
    Raises SymbolTooLong beyond version 40, ValueError for ''."""
    import qrcode
    from qrcode.exceptions import DataOverflowError

    if not text:
        raise ValueError("a QR code needs at least one character")
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(text)
    try:
        code.make(fit=True)
    except (ValueError, DataOverflowError) as exc:  # qrcode says "Invalid version (was 41...)"
        raise SymbolTooLong(f"no QR code holds this {len(text)}-character text") from exc
    matrix = code.get_matrix()
    modules = bytes(DARK if dark else LIGHT for row in matrix for dark in row)
    return Symbol("QRCode", text, len(matrix), len(matrix), modules, code.version)
