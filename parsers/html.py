"""HTML bodies to plain text, good enough to read notices: blocks become lines, table cells are tab-separated.

Quoted history matters to the classifier, so ``<blockquote>`` content is written with a leading ``"> "``
per level (the same shape as plain-text quoting), and Outlook's "From: / Sent:" reply header keeps its own
lines. Scripts, styles and the document head are dropped. Only the stdlib parser is used: it is lenient
with bad markup, and it keeps no tree, so memory follows the text, not the markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "tr", "table", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "section", "article", "header", "footer", "address", "dl", "dt", "dd",
        "center", "form", "fieldset", "caption", "thead", "tbody", "tfoot",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})
_SPACE = re.compile(r"[ \t\r\n\f\u00a0\u200b]+")


class _TextWriter(HTMLParser):
    """Collects text as lines, each remembering how deep in blockquotes it sits."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self._line: list[str] = []
        self._quote_depth = 0
        self._skip_depth = 0
        self._pre_depth = 0
        self._cells_in_row = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _CELL_TAGS:
            if self._cells_in_row:
                self._line.append("\t")
            self._cells_in_row += 1
        elif tag in _BLOCK_TAGS:
            self._break(blank_if_empty=tag == "br")
            if tag == "li":
                self._line.append("- ")
        if tag == "tr":
            self._cells_in_row = 0
        elif tag == "blockquote":
            self._quote_depth += 1
        elif tag == "pre":
            self._pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._break(blank_if_empty=tag == "br")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS and tag not in _VOID_TAGS:
            self._break(blank_if_empty=tag == "p")
        if tag == "blockquote":
            self._quote_depth = max(0, self._quote_depth - 1)
        elif tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            first, *rest = data.split("\n")
            self._line.append(first)
            for piece in rest:
                self._break()
                self._line.append(piece)
        else:
            self._line.append(_SPACE.sub(" ", data))

    def _break(self, *, blank_if_empty: bool = False) -> None:
        """End the current line. An empty paragraph or a second <br> is a blank line, as Outlook draws it."""
        text = "".join(self._line).strip(" ")
        self._line = []
        if text or (blank_if_empty and self.lines and self.lines[-1][1]):
            self.lines.append((self._quote_depth, text))

    def finish(self) -> str:
        self.close()
        self._break()
        rendered = [("> " * depth + text).rstrip() if text else "" for depth, text in self.lines]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(rendered)).strip("\n")


def html_to_text(html: str) -> str:
    """Readable text from an HTML body; never raises on malformed markup."""
    writer = _TextWriter()
    writer.feed(html)
    return writer.finish()
