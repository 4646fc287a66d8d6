"""Label rendering: what is printed scans back to exactly what was meant, on screen, on paper
and on a Zebra printer.

The ZPL of every template at every dpi is pinned by tests/golden/<template>-<dpi>.zpl. After a
deliberate layout change (and a bumped Template.version), rewrite them with

    COI_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_label_rendering.py -q

then read the diff of tests/golden/ before committing: those files are reviewed artefacts.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import itertools
import math
import os
import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from coi.labels.layout import (
    DPIS,
    SIZES,
    TEMPLATES,
    Label,
    LabelTooSmall,
    render_image,
    render_zpl,
    template_for,
)
from coi.labels.writers import MEDIA_TYPES, WRITERS, sheet_grid, write_pdf, write_png

GOLDEN = Path(__file__).parent / "golden"
# A signed verification link as payload.verification_url makes them: uppercase, base32.
URL = "HTTP://127.0.0.1:5000/V/" + base64.b32encode(bytes(range(7, 87))).decode()
UNIT = Label(
    template="unit-4x2",
    datamatrix="A999826000001A011",
    identifier_display="A9998 26 000001 A01 1",
    qr=URL,
    lines=("TIS-01 Tisagenlecleucel", "Apheresis bag 01", "Collected 2026-11-22 09:15 EST"),
    footer="unit-4x2 v1 · label 3141592653",
)
WRISTBAND = Label(
    template="wristband",
    datamatrix="A9998260000012",
    identifier_display="A9998 26 000001 2",
    qr=URL,
    lines=("TIS-01 Tisagenlecleucel", "Patient wristband"),
    footer="wristband v1 · label 2718281828",
)
CASES = [(name, dpi) for name in TEMPLATES for dpi in DPIS]


def label_for(template: str, **changes: object) -> Label:
    base = WRISTBAND if template == "wristband" else UNIT
    changes.setdefault("footer", base.footer.replace(base.template, template))
    return dataclasses.replace(base, template=template, **changes)  # type: ignore[arg-type]


def decoded(image: Image.Image) -> dict[str, str]:
    results = zxingcpp.read_barcodes(image.convert("L"), text_mode=zxingcpp.TextMode.Plain)
    return {result.format.name: result.text for result in results}


def test_the_150_character_link_is_realistic() -> None:
    assert 145 <= len(URL) <= 160 and URL == URL.upper()


# ---------------------------------------------------------------- scanning back

@pytest.mark.parametrize(("template", "dpi"), CASES)
def test_both_codes_scan_back_to_exactly_the_encoded_text(template: str, dpi: int) -> None:
    label = label_for(template)
    image = render_image(label, dpi)
    assert decoded(image) == {"DataMatrix": label.datamatrix, "QRCode": label.qr}


@pytest.mark.parametrize(("template", "dpi"), CASES)
def test_zbar_reads_the_same_qr_text_as_zxing(template: str, dpi: int) -> None:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError):
        pytest.skip("libzbar0 is not installed")
    found = pyzbar.decode(render_image(label_for(template), dpi).convert("L"))
    assert [(s.type, s.data.decode()) for s in found] == [("QRCODE", URL)]


@pytest.mark.parametrize(("template", "dpi"), CASES)
def test_the_image_is_exactly_the_label_size_in_printer_dots(template: str, dpi: int) -> None:
    size = SIZES[TEMPLATES[template].size]
    image = render_image(label_for(template), dpi)
    assert image.mode == "1"
    assert image.size == (round(size.width_in * dpi), round(size.height_in * dpi))


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_a_300_dpi_label_still_scans_when_a_phone_sees_it_at_60_percent(template: str) -> None:
    label = label_for(template)
    image = render_image(label, 300).convert("L")
    small = image.resize((round(image.width * 0.6), round(image.height * 0.6)),
                         Image.Resampling.LANCZOS)
    assert decoded(small) == {"DataMatrix": label.datamatrix, "QRCode": label.qr}


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_a_reprint_says_so_and_still_scans_to_the_same_codes(template: str) -> None:
    original, reprint = label_for(template), label_for(template, reprint=True)
    reprinted = render_image(reprint, 300)
    assert decoded(reprinted) == {"DataMatrix": reprint.datamatrix, "QRCode": reprint.qr}
    assert reprinted.tobytes() != render_image(original, 300).tobytes()
    assert "^FR^FH^FDREPRINT^FS" in render_zpl(reprint, 203)
    assert "REPRINT" not in render_zpl(original, 203)


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_a_preview_says_preview_where_a_reprint_says_reprint(template: str) -> None:
    preview = label_for(template, preview=True, reprint=True)
    assert "^FR^FH^FDPREVIEW^FS" in render_zpl(preview, 300)
    assert "REPRINT" not in render_zpl(preview, 300)
    assert decoded(render_image(preview, 300))["DataMatrix"] == preview.datamatrix


@pytest.mark.parametrize(("template", "dpi"), CASES)
def test_the_printer_puts_the_data_matrix_where_the_preview_shows_it(template: str, dpi: int) -> None:
    label = label_for(template)
    commands = render_zpl(label, dpi)
    found = re.search(r"\^FO(\d+),(\d+)\^BXN,(\d+),200,(\d+),(\d+)\^FH\^FD([^^]*)\^FS", commands)
    assert found is not None
    x, y, module, cols, rows = map(int, found.groups()[:5])
    assert found.group(6) == label.datamatrix
    [symbol] = [r for r in zxingcpp.read_barcodes(render_image(label, dpi).convert("L"))
                if r.format == zxingcpp.BarcodeFormat.DataMatrix]
    corner, far = symbol.position.top_left, symbol.position.bottom_right
    assert abs(corner.x - x) <= module and abs(corner.y - y) <= module
    assert abs(far.x - (x + cols * module)) <= module and abs(far.y - (y + rows * module)) <= module


# ---------------------------------------------------------------- what does not fit

def test_a_qr_link_far_too_long_for_a_2x1_label_at_203_dpi_is_refused_with_the_reason() -> None:
    label = label_for("unit-2x1", qr=URL + "A" * 1500)
    with pytest.raises(LabelTooSmall, match=r"unit-2x1 at 203 dpi.*QR code"):
        render_image(label, 203)
    with pytest.raises(LabelTooSmall):
        render_zpl(label, 203)


def test_a_product_line_too_long_for_the_label_is_refused_rather_than_cut() -> None:
    label = label_for("unit-2x1", lines=("Tisagenlecleucel" * 6,))
    with pytest.raises(LabelTooSmall, match="unit-2x1 at 203 dpi"):
        render_image(label, 203)


def test_labels_without_text_lines_or_with_too_many_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to 4 lines"):
        label_for("unit-2x1", lines=())
    with pytest.raises(ValueError, match="1 to 4 lines"):
        label_for("unit-2x1", lines=("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError, match="dpi"):
        render_image(UNIT, 600)


def test_templates_are_chosen_by_kind_and_size() -> None:
    assert template_for("unit", "2x1").name == "unit-2x1"
    assert template_for("unit", "4x2").name == "unit-4x2"
    assert template_for("wristband", "4x2").name == "wristband"
    with pytest.raises(ValueError):
        template_for("unit", "6x1")
    with pytest.raises(ValueError):
        template_for("sample", "2x1")


# ---------------------------------------------------------------- ZPL

def test_carets_tildes_and_underscores_in_text_cannot_become_zpl_commands() -> None:
    label = label_for("unit-4x2", lines=("Lot ^XZ~JR_7",), footer="~DG^FS")
    commands = render_zpl(label, 203)
    assert "^FH^FDLot _5EXZ_7EJR_5F7^FS" in commands
    assert "^FH^FD_7EDG_5EFS^FS" in commands
    assert commands.count("^XZ") == 1 and "~" not in commands


@pytest.mark.parametrize(("template", "dpi"), CASES)
def test_the_zpl_matches_its_reviewed_golden_file(template: str, dpi: int) -> None:
    path = GOLDEN / f"{template}-{dpi}.zpl"
    actual = render_zpl(label_for(template), dpi).encode("utf-8")
    if os.environ.get("COI_REGENERATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(actual)
    expected = path.read_bytes() if path.exists() else b""
    assert actual == expected, (
        f"{path.name} differs from the ZPL rendered now. If the layout change is deliberate, bump "
        f"the template version, run COI_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest "
        f"tests/test_label_rendering.py and review the diff of tests/golden/.")


@pytest.mark.parametrize("dpi", DPIS)
def test_the_zpl_file_has_one_label_block_per_label_sized_for_the_printer(dpi: int) -> None:
    labels = [label_for("unit-2x1"), label_for("unit-2x1"), label_for("wristband")]
    out = io.BytesIO()
    WRITERS["zpl"](labels, out, dpi)
    text = out.getvalue().decode("utf-8")
    blocks = re.findall(r"\^XA.*?\^XZ", text, flags=re.DOTALL)
    assert len(blocks) == 3 == text.count("^XA") == text.count("^XZ")
    assert [re.findall(r"\^PW(\d+)\n\^LL(\d+)", block) for block in blocks] == [
        [(str(2 * dpi), str(dpi))], [(str(2 * dpi), str(dpi))], [(str(6 * dpi), str(dpi))]]
    assert "·" in text  # UTF-8 (^CI28), not mangled


# ---------------------------------------------------------------- PNG and PDF

@pytest.mark.parametrize("dpi", DPIS)
def test_the_png_stacks_every_label_at_print_size_with_eighth_inch_gaps(dpi: int) -> None:
    labels = [label_for("unit-2x1"), label_for("unit-4x2"), label_for("wristband")]
    out = io.BytesIO()
    write_png(labels, out, dpi)
    image = Image.open(io.BytesIO(out.getvalue()))
    gap = round(dpi / 8)
    assert image.format == "PNG"
    assert image.size == (6 * dpi, (1 + 2 + 1) * dpi + 2 * gap)
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.1)
    assert decoded(image.crop((0, 0, 2 * dpi, dpi))) == {"DataMatrix": UNIT.datamatrix, "QRCode": URL}


def pdf_pages(data: bytes) -> list[bytes]:
    assert data.startswith(b"%PDF")
    pages = [body for body in re.findall(rb"\d+ 0 obj<<(.*?)>>endobj", data, flags=re.DOTALL)
             if b"/Type /Page\n" in body]
    return [re.search(rb"/MediaBox \[ ([^\]]*) \]", page).group(1) for page in pages]  # type: ignore[union-attr]


def test_25_small_labels_fill_the_letter_pages_the_grid_needs() -> None:
    columns = math.floor((8.5 - 2 * 0.25) / 2)
    rows = math.floor((11 - 2 * 0.25) / 1)
    out = io.BytesIO()
    write_pdf([label_for("unit-2x1")] * 25, out, 203)
    pages = pdf_pages(out.getvalue())
    assert (columns, rows) == (4, 10)
    assert len(pages) == math.ceil(25 / (columns * rows)) == 1
    assert len(sheet_grid([(406, 203)] * 90, 203)) == math.ceil(90 / (columns * rows)) == 3


@pytest.mark.parametrize("dpi", DPIS)
def test_every_pdf_page_is_us_letter_at_any_dpi(dpi: int) -> None:
    labels = [label_for("unit-4x2")] * 10 + [label_for("wristband")]  # a 10-unit case
    out = io.BytesIO()
    write_pdf(labels, out, dpi)
    pages = pdf_pages(out.getvalue())
    assert len(pages) == 2  # ten bag labels fill a page (2 x 5), the wristband goes on the next
    assert all(page.split() == [b"0", b"0", b"612.0", b"792.0"] for page in pages)


def test_mixed_label_sizes_never_overlap_or_leave_the_margins() -> None:
    sizes = [(406, 203), (812, 406), (1218, 203), (406, 203)] * 6
    margin, page = round(0.25 * 203), (round(8.5 * 203), round(11 * 203))
    placed = iter(sizes)
    pages = sheet_grid(sizes, 203)
    assert sum(map(len, pages)) == len(sizes)
    for corners in pages:
        boxes = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(corners, placed, strict=False)]
        for a, b in itertools.combinations(boxes, 2):
            assert a[2] <= b[0] or a[3] <= b[1] or b[3] <= a[1] or b[2] <= a[0]
        assert all(x0 >= margin and y0 >= margin and x1 <= page[0] - margin
                   and y1 <= page[1] - margin for x0, y0, x1, y1 in boxes)


def test_every_writer_has_a_media_type_and_refuses_an_empty_set() -> None:
    assert set(WRITERS) == set(MEDIA_TYPES) == {"png", "pdf", "zpl"}
    for write in WRITERS.values():
        with pytest.raises(ValueError, match="no labels"):
            write([], io.BytesIO(), 203)
