"""Label sets as files: PNG (a strip for screens), PDF (US Letter sheets for office printers)
and ZPL (for Zebra printers). One pattern: WRITERS maps a kind to a writer that takes the
labels, an open binary file and the dpi, and writes one file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import BinaryIO

from PIL import Image, ImageDraw

from coi.labels.layout import Label, render_image, render_zpl

PAGE_IN = (8.5, 11.0)  # US Letter
MARGIN_IN = 0.25
PNG_GAP_IN = 0.125  # white between labels on the PNG strip
# No gap on sheets: with one, two 4 in bag labels would not fit the 8 in between the margins
# (5 a page instead of 10). Labels keep their own white border, so shared cut lines are safe.
DASH_DOTS = 6


def write_png(labels: Sequence[Label], out: BinaryIO, dpi: int) -> None:
    """Every label at print resolution, one under another with 1/8 in white between them, left
    aligned, as one black-and-white PNG that records `dpi`. ValueError for no labels."""
    images = _images(labels, dpi)
    gap = round(PNG_GAP_IN * dpi)
    strip = Image.new("1", (max(i.width for i in images),
                            sum(i.height for i in images) + gap * (len(images) - 1)), 1)
    y = 0
    for image in images:
        strip.paste(image, (0, y))
        y += image.height + gap
    strip.save(out, "PNG", dpi=(dpi, dpi))


def sheet_grid(sizes: Sequence[tuple[int, int]], dpi: int) -> list[list[tuple[int, int]]]:
    """Where each label of `sizes` (width, height in dots) goes on US Letter sheets: per page,
    the top-left corner of each label in dots, in order. Shelf packing: labels go left to
    right, edge to edge, in rows as tall as their tallest label, inside 0.25 in margins; a new
    page when the next row does not fit. ValueError for a label larger than the printable area."""
    page_w, page_h = round(PAGE_IN[0] * dpi), round(PAGE_IN[1] * dpi)
    margin = round(MARGIN_IN * dpi)
    right, bottom = page_w - margin, page_h - margin
    pages: list[list[tuple[int, int]]] = [[]]
    x, y, shelf = margin, margin, 0
    for width, height in sizes:
        if width > right - margin or height > bottom - margin:
            raise ValueError(f"a {width}x{height}-dot label does not fit a Letter page at {dpi} dpi")
        if x + width > right:  # next shelf
            x, y, shelf = margin, y + shelf, 0
        if y + height > bottom:  # next page
            pages.append([])
            x, y, shelf = margin, margin, 0
        pages[-1].append((x, y))
        x, shelf = x + width, max(shelf, height)
    return pages


def write_pdf(labels: Sequence[Label], out: BinaryIO, dpi: int) -> None:
    """Labels at actual size on as many US Letter pages (612 x 792 pt) as they need, placed by
    sheet_grid and rendered at `dpi`, each outlined by a thin dashed cut guide on its edge.
    ValueError for no labels."""
    images = _images(labels, dpi)
    page_w, page_h = round(PAGE_IN[0] * dpi), round(PAGE_IN[1] * dpi)
    pages: list[Image.Image] = []
    placed = iter(images)
    for corners in sheet_grid([image.size for image in images], dpi):
        page = Image.new("1", (page_w, page_h), 1)
        draw = ImageDraw.Draw(page)
        for x, y in corners:
            image = next(placed)
            page.paste(image, (x, y))
            _cut_guide(draw, x, y, x + image.width - 1, y + image.height - 1)
        pages.append(page)
    # Per-axis resolution: 8.5 in at 203 dpi is 1725.5 dots, and the page must stay exactly
    # 612 points wide for printers to print labels at actual size.
    first, *rest = pages
    first.save(out, "PDF", dpi=(page_w / PAGE_IN[0], page_h / PAGE_IN[1]), save_all=True,
               append_images=rest)


def write_zpl(labels: Sequence[Label], out: BinaryIO, dpi: int) -> None:
    """The labels' ^XA ... ^XZ blocks, one after another, UTF-8, for a printer at `dpi`.
    ValueError for no labels."""
    if not labels:
        raise ValueError("nothing to write: no labels")
    # All or nothing: a label that does not fit must not leave half a job in `out`.
    blocks = [render_zpl(label, dpi) for label in labels]
    out.write("".join(blocks).encode("utf-8"))


def _cut_guide(draw: ImageDraw.ImageDraw, x0: int, y0: int, x1: int, y1: int) -> None:
    """A dashed outline on the rectangle's edge pixels."""
    for a, b in _dashes(x0, x1):
        draw.line((a, y0, b, y0), fill=0)
        draw.line((a, y1, b, y1), fill=0)
    for a, b in _dashes(y0, y1):
        draw.line((x0, a, x0, b), fill=0)
        draw.line((x1, a, x1, b), fill=0)


def _dashes(start: int, end: int) -> list[tuple[int, int]]:
    # In step with page coordinates, so a cut line shared by two labels is one clean line.
    first = start - start % (2 * DASH_DOTS)
    found = [(max(a, start), min(a + DASH_DOTS - 1, end))
             for a in range(first, end + 1, 2 * DASH_DOTS)]
    return [(a, b) for a, b in found if a <= b]


def _images(labels: Sequence[Label], dpi: int) -> list[Image.Image]:
    if not labels:
        raise ValueError("nothing to write: no labels")
    return [render_image(label, dpi) for label in labels]


WRITERS: dict[str, Callable[[Sequence[Label], BinaryIO, int], None]] = {
    "png": write_png,
    "pdf": write_pdf,
    "zpl": write_zpl,
}

MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "pdf": "application/pdf",
    "zpl": "application/vnd.zebra-zpl",
}
