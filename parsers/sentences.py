"""Phrase matching by sentence and clause: does a phrase state something, or only mention it?

A phrase counts when no hedge stands before it in the same clause ("reports that ... will be returned", "if
your report is rejected") and no historical marker follows it there ("was rejected last month"). Shared by
the rule table (parsers/classify.py) and the cue reading (parsers/cues.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

__all__ = ["any_match", "compiled", "statements", "unhedged_matches"]

HEDGE_WINDOW = 160
# A sentence ends at . ! ? followed by space, a blank line, a list bullet, or a table cell.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n[ \t]*\n|\n(?=[ \t]*(?:[-*•]|\d+[.)])\s)|\t")
# Within a sentence, a hedge only counts in the same clause as the phrase it qualifies. A line that starts
# with a capital letter starts a clause: headings and greetings often have no full stop.
_CLAUSE_BREAK = re.compile(r"[,;:()]|\n(?=[ \t]*[A-Z])|(?i:\b(?:and|but|so|however)\b)")


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def any_match(patterns: Iterable[str], text: str) -> bool:
    return any(compiled(pattern).search(text) for pattern in patterns)


def statements(
    text: str, phrases: Iterable[str], hedges: Iterable[str], after: Iterable[str] = ()
) -> tuple[str, ...]:
    """Sentences in which a phrase appears unhedged, whitespace-normalised.

    "Your report has been returned for rework" is a statement; "reports that do not meet the standard will
    be returned for rework" and "the previous version was rejected" are not.
    """
    phrases, hedges, after = tuple(phrases), tuple(hedges), tuple(after)
    return tuple(
        " ".join(sentence.split())
        for sentence in _SENTENCE_BREAK.split(text)
        if sentence and any(_first_unhedged(sentence, phrase, hedges, after) for phrase in phrases)
    )


def unhedged_matches(
    text: str, phrases: Iterable[str], hedges: Iterable[str], after: Iterable[str] = ()
) -> tuple[str, ...]:
    """The text of every unhedged match of any phrase, lower-cased and whitespace-normalised, in order."""
    phrases, hedges, after = tuple(phrases), tuple(hedges), tuple(after)
    found: list[str] = []
    for sentence in _SENTENCE_BREAK.split(text):
        for phrase in phrases if sentence else ():
            match = _first_unhedged(sentence, phrase, hedges, after)
            if match is not None:
                words = " ".join(match.group(0).lower().split())
                if words not in found:
                    found.append(words)
    return tuple(found)


def _first_unhedged(
    sentence: str, phrase: str, hedges: tuple[str, ...], after: tuple[str, ...]
) -> re.Match[str] | None:
    for match in compiled(phrase).finditer(sentence):
        # A hedge further back than HEDGE_WINDOW characters is not about this phrase; the window also
        # keeps a long unpunctuated text from costing time quadratic in its length.
        before = sentence[max(0, match.start() - HEDGE_WINDOW) : match.start()]
        if any_match(hedges, _CLAUSE_BREAK.split(before)[-1]):
            continue
        following = _CLAUSE_BREAK.split(sentence[match.end() : match.end() + HEDGE_WINDOW])[0]
        if after and any_match(after, following):
            continue
        return match
    return None
