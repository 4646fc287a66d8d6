"""How fast a case's label set renders, per output kind and printer resolution, against the
barcode libraries alone. Run from the repository root: .venv/bin/python bench/labels.py
(see bench/README.md for the columns). Measures; asserts nothing."""

from __future__ import annotations

import base64
import cProfile
import io
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qrcode  # noqa: E402
import zxingcpp  # noqa: E402

from coi.core.identifiers import CoiId  # noqa: E402
from coi.labels.layout import DPIS, Label  # noqa: E402
from coi.labels.writers import WRITERS  # noqa: E402

TARGET_SECONDS = 1.5  # per measurement


def case_labels() -> list[Label]:
    """A 10-unit case: ten 4x2 bag labels and the patient's wristband, with signed-link-sized
    QR payloads (a claim plus a 64-byte signature, base32, as verification links carry)."""
    rng = random.Random(20261122)  # the same payloads every run
    coi = CoiId.issue("A9998", 2026, 4242)

    def link() -> str:
        return "HTTPS://COI.EXAMPLE.ORG/V/" + base64.b32encode(rng.randbytes(78)).decode().rstrip("=")

    lines = ("TIS-01 Tisagenlecleucel", "Collected 2026-11-22 09:15 EST")
    units = [coi.unit("apheresis_bag", n) for n in range(1, 11)]
    labels = [Label("unit-4x2", u.text, u.display, link(),
                    (lines[0], f"Apheresis bag {n:02d}", lines[1]),
                    footer=f"unit-4x2 v1 · label {rng.randrange(2**32)}")
              for n, u in enumerate(units, 1)]
    labels.append(Label("wristband", coi.text, coi.display, link(),
                        (lines[0], "Patient wristband"),
                        footer=f"wristband v1 · label {rng.randrange(2**32)}"))
    return labels


def barcodes_only(labels: list[Label]) -> None:
    """What the barcode libraries alone cost for the set: each label's Data Matrix and QR
    module matrices, the same calls the renderer makes, nothing drawn."""
    for label in labels:
        symbol = zxingcpp.create_barcode(label.datamatrix, zxingcpp.BarcodeFormat.DataMatrix,
                                         forceSquare=True)
        image: Any = symbol.to_image(scale=1, add_quiet_zones=False)  # a buffer, untyped as one
        bytes(memoryview(image))
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
        code.add_data(label.qr)
        code.make(fit=True)
        code.get_matrix()


def rate(work: Callable[[], None], count: int) -> tuple[int, float, float]:
    """(repetitions, seconds, labels per second) for `work` on `count` labels, repeated
    enough times to take about TARGET_SECONDS."""
    start = time.perf_counter()
    work()  # also warms caches (fonts, imports) before the measured run
    once = time.perf_counter() - start
    reps = max(1, round(TARGET_SECONDS / max(once, 1e-6)))
    start = time.perf_counter()
    for _ in range(reps):
        work()
    seconds = time.perf_counter() - start
    return reps, seconds, reps * count / seconds


def barcode_share(work: Callable[[], None]) -> float:
    """The fraction of `work`'s own time (cProfile tottime) spent in zxing-cpp and qrcode."""
    profile = cProfile.Profile()
    profile.runcall(work)
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = inside = 0.0
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        total += tottime
        if "/qrcode/" in filename or "zxingcpp" in function or "zxingcpp" in filename:
            inside += tottime
    return inside / total if total else 0.0


def main() -> None:
    labels = case_labels()
    print(f"{len(labels)} labels: {sum(lb.template == 'unit-4x2' for lb in labels)} bag labels "
          f"(4x2) + 1 wristband; QR payload {len(labels[0].qr)} characters\n")
    print(f"{'output':<8}{'dpi':>5}{'reps':>6}{'seconds':>9}{'labels/s':>10}{'barcode share':>15}")
    for kind, write in WRITERS.items():
        for dpi in DPIS:
            def work(write: Callable[..., None] = write, dpi: int = dpi) -> None:
                write(labels, io.BytesIO(), dpi)

            reps, seconds, per_second = rate(work, len(labels))
            share = barcode_share(work)
            print(f"{kind:<8}{dpi:>5}{reps:>6}{seconds:>9.2f}{per_second:>10.1f}{share:>14.0%}")
    reps, seconds, per_second = rate(lambda: barcodes_only(labels), len(labels))
    print(f"{'barcodes':<8}{'-':>5}{reps:>6}{seconds:>9.2f}{per_second:>10.1f}{'100%':>15}"
          "   <- baseline: zxing-cpp Data Matrix + qrcode QR, nothing drawn")


if __name__ == "__main__":
    main()
