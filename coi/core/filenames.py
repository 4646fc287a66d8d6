"""Names of uploaded files, whatever characters they hold: kept as uploaded, and handed back
in a download header that no name can break. Pure functions; no framework."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

# RFC 5987 attr-char: what filename*= carries unescaped.
_ATTR_CHARS = "!#$&+-.^_`|~"
# Not in an ASCII fallback: the quoted-string's own quote and escape, path separators, and
# "%" (some clients percent-decode filename= although RFC 6266 says not to).
_NOT_IN_FALLBACK = set('"\\/%')


def storable(name: str, max_length: int) -> str:
    """`name` as a database text column can hold it: unchanged, except that NUL (which
    PostgreSQL text cannot hold) and lone surrogates (which are not UTF-8; a file system name
    read with surrogateescape has them) become U+FFFD, and it is cut at `max_length`."""
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch
                   for ch in name)[:max_length]


def content_disposition(name: str, *, fallback: str) -> str:
    """The Content-Disposition of a download of a file called `name` (RFC 6266): `attachment`,
    `filename="..."` in plain ASCII for every client and, when the name is more than that,
    `filename*=UTF-8''...` with the name percent-encoded (RFC 5987). The header is ASCII
    whatever `name` holds. Both forms drop what could harm the reader: control and format
    characters (a line break, NUL, a right-to-left override that disguises an extension) and
    path separators become "_"; leading dots and spaces go. `fallback` (ASCII, e.g.
    "logger-file-12") stands in for a name with no ASCII letter or digit left, such as
    "日本語.csv", keeping its extension."""
    safe = _safe(name)
    stem, dot, extension = safe.rpartition(".")
    if not (dot and stem and extension.isalnum() and len(extension) <= 10):
        stem, extension = safe, ""  # "a.tar_backup", "_.._etc_passwd": no extension to keep
    ascii_stem, ascii_extension = _ascii(stem), _ascii(extension)
    if not any(ch.isalnum() for ch in ascii_stem):
        ascii_stem = fallback
    plain = ascii_stem + ("." + ascii_extension if ascii_extension else "")
    header = f'attachment; filename="{plain}"'
    if safe and safe != plain:
        header += f"; filename*=UTF-8''{quote(safe, safe=_ATTR_CHARS)}"
    return header


def _safe(name: str) -> str:
    replaced = "".join("_" if ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")
                       else ch for ch in name)
    return replaced.lstrip(". \t").rstrip(" ")


def _ascii(text: str) -> str:
    """`text` in printable ASCII: accents dropped ("é" is "e"), other letters left out."""
    decomposed = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join("_" if ch in _NOT_IN_FALLBACK or not ch.isprintable() else ch
                   for ch in decomposed).strip()
