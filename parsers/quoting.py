"""Quoted history in a reply: where the new text ends and earlier messages (Outlook blocks, "On ... wrote:",
forwarded markers, > lines) begin, so rules read only what the sender wrote now. Pure; no I/O.
"""

from __future__ import annotations

import re

_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original)\s*-{2,}\s*$",
    re.IGNORECASE,
)


_FORWARD_MARKER = re.compile(
    r"^\s*(-{2,}\s*forwarded message\s*-{2,}|begin forwarded message:|-{2,}\s*forwarded by .*)\s*$",
    re.IGNORECASE,
)


_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")


_HEADER_FROM = re.compile(r"^\s*\*?(from|von|de|van)\s*:\*?\s*\S", re.IGNORECASE)


_HEADER_SENT = re.compile(r"^\s*\*?(sent|date|gesendet|datum|envoyé)\s*:\*?\s*\S", re.IGNORECASE)


_HEADER_OTHER = re.compile(r"^\s*\*?(to|subject|an|betreff|objet|cc)\s*:\*?", re.IGNORECASE)


_ON_WROTE = re.compile(r"^\s*On\s.{0,300}\swrote:\s*$", re.IGNORECASE)


_SIGNATURE = re.compile(r"^-- ?$")


_FORWARD_SUBJECT = re.compile(r"^\s*(fw|fwd|wg|tr)\s*:", re.IGNORECASE)


def strip_quoted_history(text: str, subject: str = "") -> str:
    """The part of a body its sender wrote now: no quoted lines, earlier messages or signature.

    A forward keeps the forwarded message (up to the next earlier one), because that is the content: a
    DWP colleague forwarding a rejection notice. So does a body that opens with a header block.
    """
    lines = text.splitlines()
    first = _history_start(lines, 0)
    if first is None:
        kept = lines
    elif _is_forward(lines, first, subject):
        second = _history_start(lines, first + 1 + _header_block_length(lines, first))
        kept = lines[: second if second is not None else len(lines)]
    else:
        kept = lines[:first]
    fresh: list[str] = []
    for line in kept:
        if _SIGNATURE.match(line):
            break
        if not line.lstrip().startswith(">"):
            fresh.append(line)
    return "\n".join(fresh).strip()


def _history_start(lines: list[str], start: int) -> int | None:
    for index in range(start, len(lines)):
        if _starts_history(lines, index):
            return index
    return None


def _starts_history(lines: list[str], index: int) -> bool:
    line = lines[index]
    if _ORIGINAL_MESSAGE.match(line) or _FORWARD_MARKER.match(line):
        return True
    if _UNDERSCORES.match(line):
        return _next_is_header_block(lines, index + 1)
    if _HEADER_FROM.match(line):
        return _next_is_header_block(lines, index)
    if line.lstrip().lower().startswith("on "):
        # "On <date>, <name> wrote:" is often wrapped over two or three lines.
        joined = (" ".join(lines[index : index + size]) for size in (1, 2, 3))
        return any(_ON_WROTE.match(candidate) for candidate in joined)
    return False


def _next_is_header_block(lines: list[str], index: int) -> bool:
    """An Outlook-style "From: / Sent: / To: / Subject:" block starts at `index` (blank lines skipped)."""
    block = [line for line in lines[index : index + 8] if line.strip()][:5]
    if not block or not _HEADER_FROM.match(block[0]):
        return False
    return any(_HEADER_SENT.match(line) for line in block[1:]) and any(
        _HEADER_OTHER.match(line) for line in block
    )


def _header_block_length(lines: list[str], index: int) -> int:
    length = 0
    for line in lines[index + 1 : index + 10]:
        if line.strip() and not (
            _HEADER_FROM.match(line) or _HEADER_SENT.match(line) or _HEADER_OTHER.match(line)
        ):
            break
        length += 1
    return length


def _is_forward(lines: list[str], first: int, subject: str) -> bool:
    if _FORWARD_SUBJECT.match(subject) or _FORWARD_MARKER.match(lines[first]):
        return True
    return not any(line.strip() for line in lines[:first])
