"""Decoding the real-data barcode pictures (phone photos, scans and synthetic images from the
zxing and zxing-cpp test suites): our pipeline reads every picture zxing-cpp alone reads, and
its read rate next to each decoder's alone.

Expected texts: each `X.txt` beside `X.png|jpg|webp`, read as bytes and decoded as UTF-8 (all of
them are UTF-8; latin-1 is the fallback), compared exactly, GS/RS/EOT and CR LF included.
`X.result.txt` and `X.metadata.txt` describe a result and are not expected texts. Two pictures
have no `.txt`: datamatrix-3/dm-c holds binary content (expected bytes in dm-c.bin) and
multi-qrcode-1/1.png four QR codes (their texts are in zxing's MultiQRCodeTestCase.java); each
has its own test below. Pictures without expected content are left out of the rates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from coi.labels import decoders
from tests.helpers import REALDATA

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

# zxing core/src/test/java/com/google/zxing/multi/qrcode/MultiQRCodeTestCase.java
MULTI_QR_TEXTS = {
    "You earned the class a 5 MINUTE DANCE PARTY!!  Awesome!  Way to go!  Let's boogie!",
    "You earned the class 5 EXTRA MINUTES OF RECESS!!  Fabulous!!  Way to go!!",
    "You get to SIT AT MRS. SIGMON'S DESK FOR A DAY!!  Awesome!!  Way to go!! Guess I better "
    "clean up! :)",
    "You get to CREATE OUR JOURNAL PROMPT FOR THE DAY!  Yay!  Way to go!  ",
}


def _pictures_with_expected_text(barcodes: Path) -> list[str]:
    """Paths, relative to `barcodes`, of the pictures that have an `X.txt` beside them."""
    return sorted(str(path.relative_to(barcodes)) for path in barcodes.rglob("*")
                  if path.suffix.lower() in PICTURE_SUFFIXES and path.with_suffix(".txt").is_file())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per picture with an expected text, listed at collection rather than at import.
    Without the real data, one placeholder: its test asks for the `realdata` fixture, which
    skips saying where the folder was expected."""
    if "picture" in metafunc.fixturenames:
        barcodes = REALDATA / "barcodes"
        names = _pictures_with_expected_text(barcodes) if barcodes.is_dir() else ["real data absent"]
        metafunc.parametrize("picture", names)


def expected_text(picture: Path) -> str:
    """The exact text `picture`'s `.txt` holds: UTF-8, or latin-1 where it is not UTF-8."""
    data = picture.with_suffix(".txt").read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def open_picture(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def zxing_alone(image: Image.Image) -> list[str]:
    """What zxing-cpp reads with its default options, in plain text mode."""
    return [result.text for result in zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)]


def pyzbar_alone(image: Image.Image) -> list[str] | None:
    """What pyzbar reads on the grayscale picture, all symbologies; None without libzbar0."""
    pyzbar, _why = decoders._pyzbar()
    if pyzbar is None:
        return None
    return [result.data.decode("utf-8", errors="replace") for result in pyzbar.decode(image.convert("L"))]


@dataclass(frozen=True)
class Reads:
    expected: str
    zxing: bool
    pyzbar: bool | None
    pipeline: bool
    pipeline_symbols: tuple[decoders.Symbol, ...]


@cache
def reads(path: Path) -> Reads:
    """Whether each decoder alone and the pipeline read `path`'s exact expected text. Cached:
    the parametrized test and the rates test look at the same pictures."""
    expected = expected_text(path)
    image = open_picture(path)
    by_pyzbar = pyzbar_alone(image)
    symbols = tuple(decoders.decode_image(image))
    return Reads(expected, expected in zxing_alone(image),
                 None if by_pyzbar is None else expected in by_pyzbar,
                 expected in [symbol.text for symbol in symbols], symbols)


def test_the_pipeline_reads_every_picture_that_zxing_cpp_alone_reads(realdata: Path, picture: str) -> None:
    result = reads(realdata / "barcodes" / picture)
    pairs = [(symbol.text, symbol.symbology) for symbol in result.pipeline_symbols]
    assert len(pairs) == len(set(pairs)), f"the pipeline repeats a symbol: {pairs}"
    if not result.zxing:
        pytest.skip("zxing-cpp alone does not read this picture: nothing to keep")
    assert result.pipeline, (f"zxing-cpp alone reads {result.expected!r}; the pipeline read only "
                             f"{[symbol.text for symbol in result.pipeline_symbols]!r}")


def test_the_pipeline_reads_a_superset_of_what_zxing_cpp_reads_and_reports_the_read_rates(
        realdata: Path) -> None:
    barcodes = realdata / "barcodes"
    names = _pictures_with_expected_text(barcodes)
    assert names, f"no pictures with an expected .txt under {barcodes}"
    results = {name: reads(barcodes / name) for name in names}
    by_zxing = {name for name, result in results.items() if result.zxing}
    by_pyzbar = {name for name, result in results.items() if result.pyzbar}
    by_pipeline = {name for name, result in results.items() if result.pipeline}
    pyzbar_missing = any(result.pyzbar is None for result in results.values())
    table = _rate_table(names, by_zxing, None if pyzbar_missing else by_pyzbar, by_pipeline)
    print("\n" + table)
    assert by_pipeline >= by_zxing, "the pipeline misses pictures zxing-cpp alone reads\n" + table


def _rate_table(names: list[str], by_zxing: set[str], by_pyzbar: set[str] | None,
                by_pipeline: set[str]) -> str:
    """Read counts and rates of each decoder over `names`, and which pictures made the
    difference."""
    total = len(names)

    def row(label: str, read: set[str] | None) -> str:
        if read is None:
            return f"{label:<18}{'n/a (no libzbar0)':>16}"
        return f"{label:<18}{len(read):>5}/{total:<4}{100 * len(read) / total:>6.1f}%"

    def listed(label: str, pictures: set[str]) -> str:
        return f"{label}: {', '.join(sorted(pictures)) or 'none'}"

    by_either = by_zxing | (by_pyzbar or set())
    return "\n".join([
        f"{'pictures':<18}{total:>5}", row("zxing-cpp alone", by_zxing),
        row("pyzbar alone", by_pyzbar), row("our pipeline", by_pipeline),
        listed("read by the pipeline, not by zxing-cpp alone", by_pipeline - by_zxing),
        listed("read by the pipeline only", by_pipeline - by_either),
        listed("read by neither decoder nor the pipeline", set(names) - by_either - by_pipeline),
    ])


def test_the_pipeline_reads_a_binary_data_matrix_byte_for_byte(realdata: Path) -> None:
    folder = realdata / "barcodes" / "zxing-cpp" / "datamatrix-3"
    expected = (folder / "dm-c.bin").read_bytes()
    # Plain text mode maps binary content byte for byte onto U+0000..U+00FF, i.e. latin-1.
    found = [symbol.text for symbol in decoders.decode_image(open_picture(folder / "dm-c.jpg"))]
    assert expected.decode("latin-1") in found
    assert any(text.encode("latin-1") == expected for text in found)


def test_the_pipeline_reads_all_four_qr_codes_in_one_photo(realdata: Path) -> None:
    image = open_picture(realdata / "barcodes" / "zxing" / "multi-qrcode-1" / "1.png")
    found = decoders.decode_image(image)
    assert {symbol.text for symbol in found} == MULTI_QR_TEXTS
    assert {symbol.symbology for symbol in found} == {"QRCode"}


def test_a_clean_picture_costs_one_zxing_cpp_call_and_no_pyzbar_call(
        realdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    read_barcodes = zxingcpp.read_barcodes

    def counting_zxing(*args: Any, **kwargs: Any) -> Any:
        calls.append("zxing-cpp")
        return read_barcodes(*args, **kwargs)

    monkeypatch.setattr(zxingcpp, "read_barcodes", counting_zxing)
    pyzbar, _why = decoders._pyzbar()
    if pyzbar is not None:
        decode = pyzbar.decode

        def counting_pyzbar(*args: Any, **kwargs: Any) -> Any:
            calls.append("pyzbar")
            return decode(*args, **kwargs)

        monkeypatch.setattr(pyzbar, "decode", counting_pyzbar)
    picture = realdata / "barcodes" / "zxing-cpp" / "datamatrix-3" / "#794.png"
    found = decoders.decode_image(open_picture(picture))
    assert [symbol.text for symbol in found] == [expected_text(picture)]
    assert calls == ["zxing-cpp"]


def test_a_caller_expecting_a_qr_code_and_a_data_matrix_gets_both_when_one_needs_a_retry(
        realdata: Path) -> None:
    barcodes = realdata / "barcodes"
    # zxing-cpp reads this Data Matrix photo only after a retry; the QR code at once.
    matrix_path = barcodes / "zxing-cpp" / "datamatrix-5" / "issue1063.webp"
    qr_path = barcodes / "zxing" / "qrcode-2" / "34.png"
    matrix, qr = open_picture(matrix_path).convert("RGB"), open_picture(qr_path).convert("RGB")
    label = Image.new("RGB", (matrix.width + qr.width, max(matrix.height, qr.height)), "white")
    label.paste(matrix, (0, 0))
    label.paste(qr, (matrix.width, 0))

    first_read = decoders.decode_image(label)  # stops at the first attempt that reads anything
    assert [symbol.symbology for symbol in first_read] == ["QRCode"]
    both = decoders.decode_image(label, expect=("QRCode", "DataMatrix"))
    assert {(symbol.symbology, symbol.text) for symbol in both} == {
        ("QRCode", expected_text(qr_path)), ("DataMatrix", expected_text(matrix_path))}


def test_text_pyzbar_decoded_in_a_guessed_character_set_is_never_returned(
        realdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if decoders._pyzbar()[0] is None:
        pytest.skip("libzbar0 is not installed: pyzbar cannot read anything")
    monkeypatch.setattr(zxingcpp, "read_barcodes", lambda *args, **kwargs: [])  # pyzbar alone
    qrcodes = realdata / "barcodes" / "zxing" / "qrcode-2"
    # A Shift_JIS QR code without ECI: zbar guesses another character set and returns
    # different characters. Missing it is safe; returning them is not.
    shift_jis = open_picture(qrcodes / "17.png")
    assert all(text != expected_text(qrcodes / "17.png") for text in pyzbar_alone(shift_jis) or [])
    assert decoders.decode_image(shift_jis) == []
    # An ASCII QR code only zbar reads at once is still read.
    ascii_qr = decoders.decode_image(open_picture(qrcodes / "28.png"))
    assert [(s.text, s.symbology, s.decoder) for s in ascii_qr] == [
        (expected_text(qrcodes / "28.png"), "QRCode", "pyzbar")]
