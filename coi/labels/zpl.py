"""ZPL II for Zebra label printers: a label block and the few fields labels use. Positions and
sizes are printer dots; every field's data goes through ^FH so that ^, ~ and _ in it can
never be read as commands."""

from __future__ import annotations

from collections.abc import Iterable

_HEX_INDICATOR = "_"  # ^FH's default: with ^FH, a literal _ must itself be escaped


QR_ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def escape(data: str) -> str:
    """`data` safe inside ^FH^FD...^FS: ^ ~ _ and control characters as _XX hex escapes
    (byte values; the rest of the text travels as UTF-8 under ^CI28)."""
    return "".join(f"{_HEX_INDICATOR}{ord(ch):02X}" if ch in "^~_" or ord(ch) < 0x20 or ord(ch) == 0x7F
                   else ch for ch in data)


def label(width: int, height: int, fields: Iterable[str], *, comment: str = "") -> str:
    """One ^XA ... ^XZ label: UTF-8 text (^CI28), print width and label length in dots, label
    home at the top-left corner, then `fields` one per line. Ends with a newline."""
    head = ["^XA"]
    if comment:
        # ^FX is ZPL's comment: the template and version, for whoever reads a spooled job.
        # ^FX takes no ^FH, so ^ and ~ are dropped rather than escaped.
        head.append(f"^FX {comment.translate({ord('^'): None, ord('~'): None})}^FS")
    head += ["^CI28", f"^PW{width}", f"^LL{height}", "^LH0,0"]
    return "\n".join([*head, *fields, "^XZ"]) + "\n"


def text(x: int, y: int, height: int, data: str, *, reverse: bool = False) -> str:
    """A line of text in scalable font 0 (CG Triumvirate Bold Condensed), `height` dots tall
    and as wide; ^FR prints it white over whatever black is beneath."""
    return f"^FO{x},{y}^A0N,{height},{height}{'^FR' if reverse else ''}^FH^FD{escape(data)}^FS"


def box(x: int, y: int, width: int, height: int) -> str:
    """A filled black rectangle (a box whose border is as thick as its smaller side)."""
    return f"^FO{x},{y}^GB{width},{height},{min(width, height)},B,0^FS"


def datamatrix(x: int, y: int, module: int, rows: int, cols: int, data: str) -> str:
    """An ECC 200 Data Matrix of exactly `rows` x `cols` modules, `module` dots each, its top-left
    module at (x, y): the printer makes the same symbol size the preview shows."""
    return f"^FO{x},{y}^BXN,{module},200,{cols},{rows}^FH^FD{escape(data)}^FS"


def qr(x: int, y: int, module: int, data: str) -> str:
    """A model 2 QR code, error correction M, `module` dots per module (ZPL's magnification,
    1-10), top-left module at (x, y). Text that is all QR-alphanumeric (our upper-case
    verification links) is given in manual alphanumeric mode, so the printer makes the same
    symbol version as the preview instead of choosing its own encoding."""
    if not 1 <= module <= 10:
        raise ValueError(f"ZPL QR magnification is 1-10 dots, not {module}")
    # M twice: in ^BQ for firmware that reads it there, in ^FD for the older ones.
    if data and set(data) <= QR_ALPHANUMERIC:
        return f"^FO{x},{y}^BQN,2,{module},M^FDMM,A{data}^FS"
    return f"^FO{x},{y}^BQN,2,{module},M^FH^FDMA,{escape(data)}^FS"
