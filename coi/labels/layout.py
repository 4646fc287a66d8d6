"""Label layouts: what goes where on a unit label or a wristband, in printer dots.

One plan per (label, dpi) places every element in whole dots; the PNG and the ZPL are both
drawn from that plan, so the picture tested here is the label the Zebra prints (barcodes
identical to the dot; text in the printer's font 0 instead of Pillow's bundled font).
Anything that does not fit raises LabelTooSmall: a label is never printed with a barcode
squeezed below a safe module size or text cut off."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from coi.labels import barcodes, zpl
from coi.labels.barcodes import Symbol

if TYPE_CHECKING:
    from PIL import Image, ImageFont


@dataclass(frozen=True, slots=True)
class LabelSize:
    name: str
    width_in: float
    height_in: float


SIZES: dict[str, LabelSize] = {
    "2x1": LabelSize("2x1", 2.0, 1.0),
    "4x2": LabelSize("4x2", 4.0, 2.0),  # apheresis / drug product bag
    "wristband": LabelSize("wristband", 6.0, 1.0),  # printable area of a patient wristband
}


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    version: int  # bump whenever the layout changes; tests/golden pins each version
    size: str  # key of SIZES


TEMPLATES: dict[str, Template] = {
    "unit-2x1": Template("unit-2x1", 1, "2x1"),
    "unit-4x2": Template("unit-4x2", 1, "4x2"),
    "wristband": Template("wristband", 1, "wristband"),
}

DPIS = (203, 300)


def template_for(kind: str, size: str) -> Template:
    """The template for a unit label of `size` ("2x1" or "4x2") or for a wristband (any
    size: there is one). ValueError for anything else."""
    if kind == "wristband":
        return TEMPLATES["wristband"]
    if kind == "unit" and size in ("2x1", "4x2"):
        return TEMPLATES[f"unit-{size}"]
    raise ValueError(f"no label template for kind {kind!r} and size {size!r}; "
                     "unit labels come in 2x1 or 4x2, wristbands in one size")


@dataclass(frozen=True, slots=True)
class Label:
    template: str  # key of TEMPLATES
    datamatrix: str  # exact Data Matrix text: the identifier with its check character
    identifier_display: str  # grouped for people: "A9998 26 000001 A01 1"
    qr: str  # exact QR text: the verification URL, uppercase (alphanumeric mode)
    lines: tuple[str, ...]  # 1-4 short lines: product, unit kind, collection time...
    reprint: bool = False  # a reprinted label says REPRINT, inverse, where nobody misses it
    footer: str = ""  # small print: "unit-2x1 v1 · label 123"
    preview: bool = False  # a preview says PREVIEW in the same place: it is not a label

    @property
    def banner(self) -> str:
        """The inverse marker text: PREVIEW, REPRINT, or none for an original."""
        return "PREVIEW" if self.preview else "REPRINT" if self.reprint else ""

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown label template {self.template!r}; one of {', '.join(TEMPLATES)}")
        if not 1 <= len(self.lines) <= 4:
            raise ValueError(f"a label has 1 to 4 lines of text, not {len(self.lines)}")
        for name, text in [("datamatrix", self.datamatrix), ("qr", self.qr),
                           ("identifier_display", self.identifier_display)]:
            if not text:
                raise ValueError(f"a label needs a {name}")
        for text in (self.identifier_display, self.footer, *self.lines):
            # A newline or tab would be drawn differently by Pillow and the printer.
            if not text.isprintable():
                raise ValueError(f"label text must be printable characters only: {text!r}")


class LabelTooSmall(ValueError):
    """The payload does not fit this template at this dpi; the message says which and why."""


# ------------------------------------------------------------------------ the plan

@dataclass(frozen=True, slots=True)
class Barcode:
    """A symbol whose top-left module is at (x, y); `module` dots per module."""

    x: int
    y: int
    module: int
    symbol: Symbol


@dataclass(frozen=True, slots=True)
class Text:
    """One line of text; (x, y) is the top of its character cell, `height` the cell in dots."""

    x: int
    y: int
    height: int
    text: str
    bold: bool = False
    reverse: bool = False  # white on the black Box drawn before it


@dataclass(frozen=True, slots=True)
class Box:
    """A filled black rectangle (REPRINT background, rules)."""

    x: int
    y: int
    width: int
    height: int


Element = Barcode | Text | Box


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything printed on one label, in dots, in drawing order."""

    template: Template
    dpi: int
    width: int
    height: int
    elements: tuple[Element, ...]


def plan_label(label: Label, dpi: int) -> Plan:
    """The one layout of `label` at `dpi` that both renderers draw. LabelTooSmall when the
    payload does not fit; ValueError for a dpi not in DPIS."""
    if dpi not in DPIS:
        raise ValueError(f"labels print at {' or '.join(map(str, DPIS))} dpi, not {dpi}")
    template = TEMPLATES[label.template]
    size = SIZES[template.size]
    width, height = round(size.width_in * dpi), round(size.height_in * dpi)
    where = f"{template.name} at {dpi} dpi"
    try:
        matrix, code = barcodes.datamatrix(label.datamatrix), barcodes.qr(label.qr)
    except barcodes.SymbolTooLong as exc:
        raise LabelTooSmall(f"{where}: {exc}") from exc
    arrange = _ARRANGERS[template.name]
    reason = ""
    # Text shrinks as a whole, in steps, until everything fits; barcodes never shrink.
    for scale in (1.0, 0.9, 0.8, 0.7, 0.6):
        try:
            elements = arrange(_Frame(label, dpi, width, height, where, scale), matrix, code)
        except _NoRoom as exc:
            reason = str(exc)
            continue
        return Plan(template, dpi, width, height, tuple(elements))
    raise LabelTooSmall(f"{where}: {reason}")


# ------------------------------------------------------------------------ rendering

def render_image(label: Label, dpi: int) -> Image.Image:
    """The label as printed: mode "1", exactly round(width_in*dpi) x round(height_in*dpi)
    pixels, one pixel per printer dot. LabelTooSmall if the payload does not fit."""
    from PIL import Image, ImageDraw

    plan = plan_label(label, dpi)
    image = Image.new("1", (plan.width, plan.height), 1)
    draw = ImageDraw.Draw(image)
    for element in plan.elements:
        if isinstance(element, Barcode):
            image.paste(element.symbol.image(element.module), (element.x, element.y))
        elif isinstance(element, Box):
            draw.rectangle((element.x, element.y, element.x + element.width - 1,
                            element.y + element.height - 1), fill=0)
        else:
            ink = 1 if element.reverse else 0
            # On the baseline where font 0 has it (about 4/5 down its cell), so that capitals
            # sit in the cell as the printer puts them, not at its bottom.
            baseline = element.y + round(element.height * 0.8)
            draw.text((element.x, baseline), element.text, font=_font(element.height), fill=ink,
                      anchor="ls", stroke_width=_stroke(element.height, element.bold), stroke_fill=ink)
    return image


def render_zpl(label: Label, dpi: int) -> str:
    """One ^XA ... ^XZ block that prints the label on a Zebra printer at `dpi`: same
    positions, same module sizes, same symbol sizes as render_image."""
    plan = plan_label(label, dpi)
    fields: list[str] = []
    for element in plan.elements:
        if isinstance(element, Barcode):
            symbol = element.symbol
            if symbol.symbology == "DataMatrix":
                fields.append(zpl.datamatrix(element.x, element.y, element.module, symbol.rows,
                                             symbol.cols, symbol.text))
            else:
                fields.append(zpl.qr(element.x, element.y, element.module, symbol.text))
        elif isinstance(element, Box):
            fields.append(zpl.box(element.x, element.y, element.width, element.height))
        else:
            fields.append(zpl.text(element.x, element.y, element.height, element.text,
                                   reverse=element.reverse))
    template = plan.template
    return zpl.label(plan.width, plan.height, fields,
                     comment=f"{template.name} v{template.version} {dpi} dpi")


@lru_cache(maxsize=64)
def _font(height: int) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    font = ImageFont.load_default(size=height)
    assert isinstance(font, ImageFont.FreeTypeFont)  # FreeType is part of every Pillow wheel
    return font


def _stroke(height: int, bold: bool) -> int:
    # Pillow bundles no bold face; a one-dot stroke stands in for the printer's bold font 0.
    # Under 20 dots the stroke fills the counters of e, a and 6, so small bold stays regular.
    return 1 if bold and height >= 20 else 0


def _width(text: str, height: int, bold: bool) -> int:
    return int(_font(height).getlength(text) + 0.999) + 2 * _stroke(height, bold)


# ------------------------------------------------------------------------ arranging

class _NoRoom(Exception):
    """This text scale does not fit; the message says what did not."""


@dataclass(slots=True)
class _Frame:
    label: Label
    dpi: int
    width: int
    height: int
    where: str
    scale: float

    def dots(self, inches: float) -> int:
        return int(inches * self.dpi + 0.5)

    def type_size(self, nominal_in: float, minimum_in: float) -> tuple[int, int]:
        """(nominal, minimum) type height in dots at this frame's scale; never under 10 dots,
        the smallest height font 0 accepts."""
        minimum = max(10, self.dots(minimum_in))
        return max(minimum, self.dots(nominal_in * self.scale)), minimum


def _fit(text: str, room: int, size: tuple[int, int], *, bold: bool = False, max_lines: int = 2,
         keep: int = 0) -> tuple[list[str], int]:
    """The lines and type height, largest first, at which `text` fits `room` dots wide: one
    line if possible at a size, else two. `keep` words stay together on the first line when
    breaking (the facility, year and serial of an identifier), if that fits."""
    nominal, minimum = size
    words = text.split(" ")
    splits = [keep] if 0 < keep < len(words) else []
    splits += sorted(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) * 2 - len(text)))
    for height in range(nominal, minimum - 1, -1):
        if _width(text, height, bold) <= room:
            return [text], height
        for cut in splits if max_lines >= 2 else []:
            pair = [" ".join(words[:cut]), " ".join(words[cut:])]
            if all(_width(part, height, bold) <= room for part in pair):
                return pair, height
    raise _NoRoom(f"{text[:30]!r} does not fit {room} dots even at {minimum}-dot type")


class _Column:
    """Text stacked downwards in a column [x, x + room) starting at y."""

    def __init__(self, x: int, y: int, room: int) -> None:
        self.x, self.y, self.room = x, y, room
        self.elements: list[Element] = []

    def text(self, text: str, size: tuple[int, int], *, bold: bool = False, max_lines: int = 2,
             keep: int = 0) -> None:
        lines, height = _fit(text, self.room, size, bold=bold, max_lines=max_lines, keep=keep)
        for line in lines:
            self.elements.append(Text(self.x, self.y, height, line, bold))
            self.y += round(height * 1.18)  # room for descenders without loose lines

    def banner(self, text: str, height: int) -> None:
        self.elements.extend(_banner(text, self.x, self.y, self.room, height))
        self.y += height + max(2, height // 6)

    def gap(self, dots: int) -> None:
        self.y += dots


def _banner(text: str, x: int, y: int, width: int, height: int) -> list[Element]:
    """REPRINT (or PREVIEW), white on a black bar, centred: it must stop anyone who expects
    an original."""
    type_height = round(height * 0.78)
    text_width = _width(text, type_height, True)
    return [Box(x, y, width, height),
            Text(x + max(0, (width - text_width) // 2), y + (height - type_height) // 2 + 1,
                 type_height, text, bold=True, reverse=True)]


def _qr_right(frame: _Frame, code: Symbol, max_side_in: float) -> tuple[Barcode, int]:
    """The QR code against the right edge, vertically centred, module as large as the room
    allows (whole dots, at most 10: the largest ZPL magnification), with a 4-module quiet
    zone inside the label; and the x where its quiet zone begins."""
    side = min(frame.height, frame.dots(max_side_in))
    module = min(10, side // (code.cols + 8))
    if module < 2:
        raise LabelTooSmall(
            f"{frame.where}: the QR code for this {len(code.text)}-character link is version "
            f"{code.version} ({code.cols} modules + 8 quiet) and needs {2 * (code.cols + 8)} "
            f"dots at 2 dots a module; the label has {side}")
    box = (code.cols + 8) * module
    x0, y0 = frame.width - box, (frame.height - box) // 2
    return Barcode(x0 + 4 * module, y0 + 4 * module, module, code), x0


def _footer(frame: _Frame, x: int, bottom: int, room: int, column_bottom: int) -> list[Element]:
    """The small print above `bottom`, if any; _NoRoom if the column above reaches into it."""
    footer: list[Element] = []
    if frame.label.footer:
        lines, height = _fit(frame.label.footer, room, frame.type_size(0.05, 0.05), max_lines=1)
        bottom -= height
        footer.append(Text(x, bottom, height, lines[0]))
    if column_bottom > bottom:
        raise _NoRoom(f"the text needs {column_bottom - bottom} dots more height than there is")
    return footer


def _unit_2x1(frame: _Frame, matrix: Symbol, code: Symbol) -> list[Element]:
    """Data Matrix top-left, REPRINT and product beside it; identifier under it (two lines if
    needed), the other lines, footer at the bottom; QR code on the right, full height."""
    label, edge = frame.label, frame.dots(0.04)
    qr, qr_x = _qr_right(frame, code, 1.0)
    # 0.015 in X-dimension in whole dots, half rounded up: 3 at 203 dpi, 5 (not 4) at 300.
    module = frame.dots(0.015)
    dm_at = max(edge, 2 * module)
    dm = Barcode(dm_at, dm_at, module, matrix)
    dm_right, dm_bottom = dm_at + matrix.cols * module, dm_at + matrix.rows * module
    beside_x = dm_right + max(2 * module, frame.dots(0.035))
    beside = _Column(beside_x, dm_at, qr_x - beside_x)
    if label.banner:
        beside.banner(label.banner, frame.dots(0.1))
    beside.text(label.lines[0], frame.type_size(0.08, 0.05), bold=True)
    below = _Column(edge, max(dm_bottom + 2 * module, beside.y), qr_x - edge)
    below.text(label.identifier_display, frame.type_size(0.11, 0.075), bold=True, keep=3)
    for line in label.lines[1:]:
        below.text(line, frame.type_size(0.075, 0.05))
    footer = _footer(frame, edge, frame.height - edge, qr_x - edge, below.y)
    return [dm, *beside.elements, *below.elements, *footer, qr]


def _unit_4x2(frame: _Frame, matrix: Symbol, code: Symbol) -> list[Element]:
    """Bag label: REPRINT bar across the top; Data Matrix with the identifier in large type
    beside it; a rule; product (bold) and the other lines; footer; QR code on the right."""
    label, edge = frame.label, frame.dots(0.06)
    qr, qr_x = _qr_right(frame, code, 1.6)
    room = qr_x - edge
    top = _Column(edge, edge, room)
    if label.banner:
        top.banner(label.banner, frame.dots(0.24))
    module = frame.dots(0.02)  # a bag label has room for the sturdier 20 mil: 4 and 6 dots
    dm_x, dm_y = max(edge, 2 * module), max(top.y, 2 * module)
    dm = Barcode(dm_x, dm_y, module, matrix)
    dm_side = matrix.rows * module
    beside_x = dm_x + matrix.cols * module + max(2 * module, frame.dots(0.06))
    beside = _Column(beside_x, dm_y, qr_x - beside_x)
    beside.text(label.identifier_display, frame.type_size(0.19, 0.12), bold=True, keep=3)
    # Centre the identifier on the symbol: they are read together.
    shift = max(0, (dm_side - (beside.y - dm_y)) // 2)
    identifier = [Text(t.x, t.y + shift, t.height, t.text, t.bold)
                  for t in beside.elements if isinstance(t, Text)]
    body = _Column(edge, max(dm_y + dm_side + 2 * module, beside.y + shift) + frame.dots(0.03),
                   room)
    rule = Box(edge, body.y, room - frame.dots(0.06), max(2, frame.dots(0.01)))
    body.gap(rule.height + frame.dots(0.05))
    body.text(label.lines[0], frame.type_size(0.15, 0.08), bold=True)
    for line in label.lines[1:]:
        body.text(line, frame.type_size(0.13, 0.07))
    footer = _footer(frame, edge, frame.height - edge, room, body.y)
    return [*top.elements, dm, *identifier, rule, *body.elements, *footer, qr]


def _wristband(frame: _Frame, matrix: Symbol, code: Symbol) -> list[Element]:
    """Data Matrix on the left, identifier in large type in the middle with REPRINT beside it,
    product and other lines under it, footer at the bottom; QR code on the right."""
    label, edge = frame.label, frame.dots(0.04)
    qr, qr_x = _qr_right(frame, code, 1.0)
    module = frame.dots(0.015)  # small: a wristband curves round the wrist
    dm_x = max(edge, 2 * module)
    # Top-aligned with the identifier: symbol and number are read as one.
    dm = Barcode(dm_x, max(edge, 2 * module) + frame.dots(0.03), module, matrix)
    x = dm_x + matrix.cols * module + max(2 * module, frame.dots(0.1))
    room = qr_x - frame.dots(0.05) - x
    marker_width, gap = frame.dots(1.1), frame.dots(0.15)
    middle = _Column(x, edge, room - (marker_width + gap if label.banner else 0))
    middle.text(label.identifier_display, frame.type_size(0.2, 0.11), bold=True, max_lines=1)
    marker: list[Element] = []
    if label.banner:
        shown = middle.elements[0]
        assert isinstance(shown, Text)
        marker_height = max(shown.height, frame.dots(0.18))
        after = x + _width(shown.text, shown.height, True) + gap
        marker = _banner(label.banner, after, shown.y, marker_width, marker_height)
        middle.y = max(middle.y, shown.y + marker_height)
    middle.room = room
    middle.gap(frame.dots(0.02))
    middle.text(label.lines[0], frame.type_size(0.1, 0.06), bold=True, max_lines=1)
    for line in label.lines[1:]:
        middle.text(line, frame.type_size(0.085, 0.055), max_lines=1)
    footer = _footer(frame, x, frame.height - edge, room, middle.y)
    return [dm, *marker, *middle.elements, *footer, qr]


_ARRANGERS: dict[str, Callable[[_Frame, Symbol, Symbol], list[Element]]] = {
    "unit-2x1": _unit_2x1,
    "unit-4x2": _unit_4x2,
    "wristband": _wristband,
}
