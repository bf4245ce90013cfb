"""Which case and submission an inbound notice is about. Pure: the caller looks things up, this decides.

Evidence comes in order of strength: a Message-ID we sent (In-Reply-To, References, a bounce's original
message, or anywhere in a bounce), a submission token, the one report a bounce for the DWP inbox can be
about, then case references and NI numbers in the text. Nothing
is guessed: evidence that points at two cases, or at none, sends the message to a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Method(StrEnum):
    IN_REPLY_TO = "in-reply-to"
    REFERENCES = "references"
    DSN_ORIGINAL = "dsn-original"
    SUBJECT_TOKEN = "subject-token"  # noqa: S105 - a kind of evidence, not a secret
    # A bounce's text or returned copy: one of our Message-IDs, or a submission token, anywhere in it.
    MESSAGE_ID_IN_TEXT = "message-id-in-text"
    TOKEN_IN_TEXT = "token-in-text"  # noqa: S105 - a kind of evidence, not a secret
    # A bounce that names only the DWP inbox: the one report sent to it shortly before.
    RECIPIENT_AND_TIME = "recipient-and-time"
    CASE_REF = "case-ref"
    NINO = "nino"


@dataclass(frozen=True)
class Candidate:
    """A submission (or only a case) that one piece of evidence points at."""

    method: Method
    case_id: int
    submission_id: int | None = None


@dataclass(frozen=True)
class OpenSubmission:
    """A submission of the case that a notice could still be about (sent and not superseded)."""

    id: int
    report_type: str
    sent_order: int  # larger is more recent


@dataclass(frozen=True)
class Match:
    case_id: int | None
    submission_id: int | None
    method: Method | None
    trace: tuple[str, ...] = field(default=())
    problem: str | None = None  # set when a person must decide
    # Some evidence points at a case of ours, even when a person must still say which case or submission.
    refers: bool = False

    @property
    def matched(self) -> bool:
        return self.problem is None and self.submission_id is not None


STRONG = (
    Method.IN_REPLY_TO,
    Method.REFERENCES,
    Method.DSN_ORIGINAL,
    Method.SUBJECT_TOKEN,
    Method.MESSAGE_ID_IN_TEXT,
    Method.TOKEN_IN_TEXT,
    Method.RECIPIENT_AND_TIME,
)
# Evidence a bounce carries of our own sending: enough to fail the submission (and alert the team) even
# when the bounce's sender is not authenticated, because that direction only ever asks for attention.
BOUNCE_EVIDENCE = frozenset(
    {
        Method.DSN_ORIGINAL,
        Method.MESSAGE_ID_IN_TEXT,
        Method.TOKEN_IN_TEXT,
        Method.SUBJECT_TOKEN,
        Method.RECIPIENT_AND_TIME,
        Method.IN_REPLY_TO,
        Method.REFERENCES,
    }
)


def decide(
    candidates: Sequence[Candidate],
    open_submissions: Sequence[OpenSubmission],
    *,
    report_types_named: Sequence[str] = (),
) -> Match:
    """Turn the evidence into one submission, or say why a person must decide.

    `open_submissions` are those of the single case the evidence agrees on (the caller fetches them after a
    first call returns a case without a submission; see `needs_open_submissions`).
    """
    return replace(_decide(candidates, open_submissions, report_types_named), refers=bool(candidates))


def _decide(
    candidates: Sequence[Candidate],
    open_submissions: Sequence[OpenSubmission],
    report_types_named: Sequence[str],
) -> Match:
    trace = tuple(
        f"{c.method}: case {c.case_id}" + (f" submission {c.submission_id}" if c.submission_id else "")
        for c in candidates
    )
    if not candidates:
        return Match(None, None, None, trace, "no reference to any case or submission of ours")
    cases = {c.case_id for c in candidates}
    if len(cases) > 1:
        return Match(None, None, None, trace, f"points at {len(cases)} different cases")
    case_id = next(iter(cases))
    strong = [c for c in candidates if c.method in STRONG and c.submission_id is not None]
    submissions = {c.submission_id for c in strong}
    if len(submissions) > 1:
        return Match(case_id, None, None, trace, "points at more than one submission of the case")
    if strong:
        return Match(case_id, strong[0].submission_id, strong[0].method, trace)
    method = candidates[0].method
    return _by_case(case_id, method, open_submissions, report_types_named, trace)


def _by_case(
    case_id: int,
    method: Method,
    open_submissions: Sequence[OpenSubmission],
    report_types_named: Sequence[str],
    trace: tuple[str, ...],
) -> Match:
    if not open_submissions:
        return Match(case_id, None, method, trace, "the case has no sent submission this could be about")
    pool = list(open_submissions)
    if report_types_named:
        named = [s for s in pool if s.report_type in report_types_named]
        if named:
            pool = named
    types = {s.report_type for s in pool}
    if len(types) > 1:
        return Match(
            case_id,
            None,
            method,
            trace,
            "the case has several sent reports and the notice does not say which",
        )
    # Several versions of one report type: a notice without threading is about the latest one sent.
    latest = max(pool, key=lambda s: s.sent_order)
    return Match(
        case_id, latest.id, method, (*trace, f"latest sent {latest.report_type}: submission {latest.id}")
    )


def needs_open_submissions(candidates: Sequence[Candidate]) -> bool:
    """True when the evidence names one case but no submission, so the caller should fetch its open ones."""
    cases = {c.case_id for c in candidates}
    return len(cases) == 1 and not any(c.method in STRONG and c.submission_id for c in candidates)
