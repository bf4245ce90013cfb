"""Errors raised by the parsers package.

    ParseError(Exception)                  this input could not be understood
    ├── MalformedMessage(ParseError, ValueError)   MIME that cannot be read at all
    ├── InvalidNino(ParseError, ValueError)        not a valid National Insurance number
    └── PdfError(ParseError)                       a PDF that cannot be read (corrupt, encrypted, too big)

Messages never contain the offending input itself: it may be personal data.
"""


class ParseError(Exception):
    """Base class: this input could not be understood."""


class MalformedMessage(ParseError, ValueError):
    """The message cannot be parsed at all."""


class InvalidNino(ParseError, ValueError):
    """The text is not a valid National Insurance number."""


class PdfError(ParseError):
    """The PDF cannot be read: corrupt, encrypted, empty or over a configured limit."""
