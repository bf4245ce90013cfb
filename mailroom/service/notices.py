"""Queueing mail we write ourselves (reminders, escalations, alerts) into the durable outbox.

Checked here, before anything is stored: every recipient is on the allow-list, and no header value can
carry a line break. Notices name the case reference and submission token only: never a customer's name,
NI number or health details.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session

from mailroom.core.config import Settings
from mailroom.core.errors import InputError
from mailroom.service.wording import Wording
from mailroom.store.models import Case, InboundMessage, Notice, Submission
from mailroom.store.queries import add_audited
from outbox.compose import make_message_id
from outbox.templates import RenderedNotice

ACTOR = "daemon:notices"


def new_message_id(settings: Settings, *, label: str, now: datetime) -> str:
    """A unique Message-ID in our own domain; `label` (a token like S-000123) holds no personal data."""
    return make_message_id(settings.provider.from_address.rsplit("@", 1)[1], label, now)


def queue_notice(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    kind: str,
    recipients: Sequence[str],
    subject: str,
    body: str,
    case_id: int | None = None,
    submission_id: int | None = None,
    in_reply_to: str | None = None,
) -> Notice:
    allowed = settings.allowed_recipients()
    refused = [r for r in recipients if r.lower() not in allowed]
    if refused:
        raise InputError(f"{kind} notice refused: {len(refused)} recipient(s) not on the outbound allow-list")
    if any(ch in subject for ch in "\r\n"):
        raise InputError(f"{kind} notice refused: line break in the subject")
    notice = Notice(
        kind=kind,
        case_id=case_id,
        submission_id=submission_id,
        recipients=[r.lower() for r in recipients],
        subject=subject[:255],
        body=body,
        message_id=new_message_id(settings, label=kind, now=now),
        in_reply_to=in_reply_to,
        state="queued",
        next_attempt_at=now,
        created_at=now,
    )
    add_audited(
        session,
        notice,
        entity="notice",
        action="queued",
        now=now,
        actor=ACTOR,
        to_state="queued",
        detail={"kind": kind, "submission": submission_id},
    )
    return notice


def alert_team(
    session: Session,
    settings: Settings,
    wording: Wording,
    *,
    now: datetime,
    submission: Submission,
    case: Case,
    headline: str,
    problem: str,
) -> Notice:
    """Tell the provider team a report did not get through; the case reference is the only identifier."""
    words = wording.send_failure(case, submission, headline=headline, reason=problem)
    return _alert(session, settings, words, now=now, case=case, submission=submission)


def alert_review(
    session: Session,
    settings: Settings,
    wording: Wording,
    *,
    now: datetime,
    message: InboundMessage,
    case: Case | None,
    submission: Submission | None,
) -> Notice:
    """Tell the provider team a DWP message about one of our cases waits for a person, and why."""
    words = wording.review_alert(message, case, submission)
    return _alert(session, settings, words, now=now, case=case, submission=submission)


def _alert(
    session: Session,
    settings: Settings,
    words: RenderedNotice,
    *,
    now: datetime,
    case: Case | None,
    submission: Submission | None,
) -> Notice:
    """An alert to the provider team, through the durable outbox like every notice."""
    return queue_notice(
        session,
        settings=settings,
        now=now,
        kind="alert",
        recipients=(settings.provider.team_address,),
        subject=words.subject,
        body=words.body,
        case_id=case.id if case else None,
        submission_id=submission.id if submission else None,
    )
