"""The scored reading of a rejection: cues of a negative outcome, of a requested action, and of a report.

A phrase list trails DWP's next memo; a rejection in new words still says that our report had a negative
outcome ("could not be accepted", "hasn't been approved", "wedi'i wrthod") and what the provider must do
("please correct and resubmit", "send an updated version"). Both kinds of cue about a report make a
rejection; one kind alone is a reason for a person to read the message. Hedges cancel a cue as they cancel a
phrase: conditional, general, historical wording and quoted history never count.
"""

from __future__ import annotations

from dataclasses import dataclass

from parsers.sentences import any_match, unhedged_matches
from parsers.types import ClassifyPolicy

__all__ = ["Cues", "read_cues"]


@dataclass(frozen=True)
class Cues:
    """The matched words of each kind of cue, lower-cased, in the order found."""

    outcome: tuple[str, ...] = ()
    action: tuple[str, ...] = ()
    report: bool = False

    @property
    def rejection(self) -> bool:
        """Both halves of a rejection, about a report."""
        return bool(self.outcome and self.action and self.report)

    @property
    def partial(self) -> bool:
        """One half only: not enough to start a clock, too much to file away."""
        return bool(self.outcome or self.action) and not self.rejection

    def describe(self) -> tuple[str, ...]:
        return (
            *(f"outcome: {words}" for words in self.outcome),
            *(f"action: {words}" for words in self.action),
            *(("report: named",) if self.report and (self.outcome or self.action) else ()),
        )

    def __or__(self, other: Cues) -> Cues:
        return Cues(
            _merge(self.outcome, other.outcome),
            _merge(self.action, other.action),
            self.report or other.report,
        )


def read_cues(text: str, subject: str, policy: ClassifyPolicy) -> Cues:
    """The cues in `text` (new text or an attachment's); the report may be named there or in the subject."""
    outcome = unhedged_matches(text, policy.outcome_cues, policy.hedge_phrases, policy.historical_markers)
    action = unhedged_matches(text, policy.action_cues, policy.action_hedges, policy.historical_markers)
    report = any_match(policy.report_words, f"{subject}\n{text}")
    return Cues(outcome, action, report)


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(words for words in second if words not in first)
