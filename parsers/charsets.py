"""Bytes and header words to text: declared charsets (with the aliases real mailers write), RFC 2047 words,
raw 8-bit header bytes; unknown or lying charsets fall back to UTF-8, then cp1252. Pure; never raises.
"""

from __future__ import annotations

import re
from email import header as email_header

_CHARSET_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "cp-1252": "windows-1252",
    "win-1252": "windows-1252",
    "ansi_x3.4-1968": "ascii",
    "x-unknown": "",
    "unknown-8bit": "",
    "us-ascii": "",
    "ascii": "",
}


_SMUGGLED = re.compile("[\udc80-\udcff]")


def decode_header_value(value: str) -> str:
    """A header value as text: RFC 2047 words decoded (unknown charsets as UTF-8/cp1252), unfolded."""
    value = unsmuggle(value)
    if "=?" not in value:
        return clean(value)
    try:
        pieces = email_header.decode_header(value)
    except Exception:  # email.header raises several types on broken encoded words; keep the raw text
        return clean(value)
    return clean("".join(_piece(data, charset) for data, charset in pieces))


def _piece(data: bytes | str, charset: str | None) -> str:
    if isinstance(data, str):
        return data
    if charset is None:
        # decode_header hands back the unencoded runs between encoded words in this codec.
        return data.decode("raw-unicode-escape")
    return decode_bytes(data, charset)[0]


def unsmuggle(value: str) -> str:
    """Raw 8-bit bytes in a header arrive as surrogate escapes; read them as UTF-8, else cp1252."""
    if _SMUGGLED.search(value):
        return decode_bytes(value.encode("utf-8", "surrogateescape"), None)[0]
    return value


def clean(value: str) -> str:
    """Unfold and trim a header value (after turning any smuggled raw bytes into text)."""
    return re.sub(r"[\r\n]+[ \t]*", " ", unsmuggle(value)).strip()


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text from bytes in a declared charset; unknown or missing charsets fall back to UTF-8, then cp1252.

    Returns the text and a defect name when the charset could not be used as declared.
    """
    name = (charset or "").strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    if name:
        try:
            return data.decode(name, "replace"), None
        except (LookupError, ValueError, TypeError):
            # LookupError: unknown or not a text codec (e.g. "base64"); UnicodeError: codecs such as idna
            # that refuse the "replace" handler.
            pass
    try:
        return data.decode("utf-8"), ("unknown-charset" if name else None)
    except UnicodeDecodeError:
        # cp1252 is what "latin-1" mail almost always is (WHATWG maps one to the other).
        return data.decode("cp1252", "replace"), ("unknown-charset" if name else "undeclared-8bit")
