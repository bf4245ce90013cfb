"""What the read-only commands show (`queue`, `inbox`, `clocks`, `escalations`, `case show`): one page of a
listing or one case, read in one transaction, never written.

Light on purpose (issue 13): the store's queries, the pure core and nothing else, so a listing loads no
daemon wiring, no writing service, no classifier and no gpg before its first query. The services that also
answer these questions (`Mailroom.queue`, `ReviewDesk.listing`, `ClockKeeper.preview`, `case_view`) call
these functions, so the CLI's light path and the service's answers cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailroom.core.config import ClockSettings, EscalationSettings, Settings
from mailroom.core.deadlines import (
    ClockKind,
    ClockPolicy,
    ClockSnapshot,
    ClockState,
    DueAction,
    preview,
)
from mailroom.core.errors import ConfigError, Conflict, InputError
from mailroom.core.identity import case_ref_hash
from mailroom.core.states import WAITING, InboundState, SubmissionState
from mailroom.core.workdays import WorkCalendar
from mailroom.store import queries
from mailroom.store.engine import transaction
from mailroom.store.listings import (
    Page,
    active_clocks_listing,
    escalations_listing,
    inbound_listing,
    page_by_due,
    page_by_id,
    submissions_listing,
)
from mailroom.store.models import (
    Case,
    Clock,
    Escalation,
    InboundMessage,
    Notice,
    Submission,
    Tombstone,
)

Snapshots = dict[int, tuple[ClockSnapshot, Clock, Case]]


def iso_or_none(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- settings the clocks need ------------------------------------------------------------------------------


def clock_policy(settings: Settings) -> ClockPolicy:
    c, e = settings.clocks, settings.escalation
    try:
        return _clock_policy(c, e)
    except ValueError as exc:
        raise ConfigError(settings.source, "[clocks]", str(exc)) from None


def _clock_policy(c: ClockSettings, e: EscalationSettings) -> ClockPolicy:
    return ClockPolicy(
        acknowledgement_days=c.acknowledgement_days,
        decision_days=c.decision_days,
        correction_days=c.correction_days,
        correction_reminders=c.correction_reminders,
        acknowledgement_reminders=c.acknowledgement_reminders,
        repeat_every_days=e.repeat_every_days,
        max_escalations=e.max_escalations,
        count_event_day=c.count_event_day,
    )


def work_calendar(settings: Settings) -> WorkCalendar:
    c = settings.calendar
    try:
        return WorkCalendar.for_division(
            c.division, extra_closures=c.extra_closures, day_end=c.day_end, tz=c.timezone
        )
    except ValueError as exc:
        raise ConfigError(settings.source, "[calendar]", str(exc)) from None


# -- listings ----------------------------------------------------------------------------------------------


def queue_page(
    engine: sa.Engine, *, state: str | None = None, after: int | None = None, limit: int = 50
) -> Page[Any]:
    """`mailroom queue`: a page of submissions by id, and how many follow it."""
    if state is not None and state not in set(SubmissionState):
        known = ", ".join(s.value for s in SubmissionState)
        raise InputError(f"unknown state {state!r} (known: {known})")
    with transaction(engine) as session:
        found = page_by_id(session, submissions_listing(state), col(Submission.id), after=after, limit=limit)
        return found.map(lambda row: _queued(*row))


def escalations_page(engine: sa.Engine, *, after: int | None = None, limit: int = 50) -> Page[Any]:
    """Reminders and escalations fired, newest first, with the state of each notice: one page."""
    with transaction(engine) as session:
        found = page_by_id(
            session, escalations_listing(), col(Escalation.id), after=after, limit=limit, newest_first=True
        )
        return found.map(lambda row: _escalation(*row))


def inbox_page(
    engine: sa.Engine, *, state: str | None, after: int | None = None, limit: int = 50
) -> Page[Any]:
    """`mailroom inbox`: a page of messages waiting for a person by default, or of those in `state`."""
    if state is not None and state not in set(InboundState):
        raise InputError(f"unknown state {state!r} (known: {', '.join(s.value for s in InboundState)})")
    wanted = [state] if state else sorted(WAITING)
    with transaction(engine) as session:
        found = page_by_id(session, inbound_listing(wanted), col(InboundMessage.id), after=after, limit=limit)
        return found.map(lambda row: _listed(*row))


def clock_preview(
    engine: sa.Engine,
    policy: ClockPolicy,
    calendar: WorkCalendar,
    as_of: date,
    *,
    after: int | None = None,
    limit: int = 50,
) -> Page[dict[str, Any]]:
    """`mailroom clocks --as-of DATE`: a page of open clocks by due time, and what would fire on that
    day. Changes nothing."""
    with transaction(engine) as session:
        found = page_by_due(session, active_clocks_listing(), after=after, limit=limit)
        clocks = clock_snapshots(session, found.rows)
    actions = preview([snap for snap, _, _ in clocks.values()], as_of, calendar, policy)
    firing: dict[int, list[DueAction]] = {}
    for action in actions:
        firing.setdefault(action.clock_id, []).append(action)
    rows = [
        {
            "clock_id": snap.id,
            "case_ref": case.case_ref,
            "submission_id": snap.submission_id,
            "kind": snap.kind,
            "state": snap.state,
            "started_at": snap.started_at.isoformat(),
            "due_at": snap.due_at.isoformat(),
            "calendar": clock.calendar,
            "fires": [
                {"level": a.level, "action": a.kind, "at": a.due_at.isoformat()}
                for a in firing.get(snap.id, [])
            ],
        }
        for snap, clock, case in clocks.values()
    ]
    return Page(rows, found.more, found.last)


def clock_snapshots(session: Session, rows: Sequence[tuple[Clock, Case]]) -> Snapshots:
    """The core's view of each clock (with the levels already fired), beside its row and its case."""
    fired: dict[int, set[str]] = {}
    ids = [clock.id for clock, _ in rows]
    for start in range(0, len(ids), 2000):
        for clock_id, level in session.exec(
            select(Escalation.clock_id, Escalation.level).where(
                col(Escalation.clock_id).in_(ids[start : start + 2000])
            )
        ).all():
            fired.setdefault(clock_id, set()).add(level)
    result = {}
    for clock, case in rows:
        assert clock.id is not None
        snap = ClockSnapshot(
            id=clock.id,
            kind=ClockKind(clock.kind),
            state=ClockState(clock.state),
            started_at=clock.started_at,
            due_at=clock.due_at,
            submission_id=clock.submission_id,
            case_ref=case.case_ref,
            fired_levels=frozenset(fired.get(clock.id, set())),
        )
        result[clock.id] = (snap, clock, case)
    return result


def _queued(s: Submission, case_ref: str) -> dict[str, Any]:
    return {
        "id": s.id,
        "case_ref": case_ref,
        "report_type": s.report_type,
        "version": s.version,
        "state": s.state,
        "attempts": s.attempts,
        "next_attempt_at": iso_or_none(s.next_attempt_at),
        "last_smtp": f"{s.last_smtp_code} {s.last_smtp_text}" if s.last_smtp_code else None,
        "message_id": s.message_id,
    }


def _escalation(e: Escalation, clock: Clock, case: Case, notice: Notice | None) -> dict[str, Any]:
    return {
        "id": e.id,
        "case_ref": case.case_ref,
        "submission_id": clock.submission_id,
        "clock": clock.kind,
        "level": e.level,
        "kind": e.kind,
        "to": e.recipients,
        "created_at": iso_or_none(e.created_at),
        "notice_state": notice.state if notice else None,
        "sent_at": iso_or_none(notice.sent_at) if notice else None,
    }


def _listed(m: InboundMessage, case_ref: str | None) -> dict[str, Any]:
    return {
        "id": m.id,
        "state": m.state,
        "kind": m.kind,
        "trusted": m.trusted,
        "sender": m.sender,
        "received_at": m.received_at.isoformat(),
        "case_ref": case_ref,
        "match_method": m.match_method,
        "submission_id": m.submission_id,
        "rules": m.rules,
        "cues": m.cues,
        "reasons": m.reasons,
        "review": m.review,
        "applied_as": m.applied_as,
        "detail": m.detail,
    }


# -- one case ----------------------------------------------------------------------------------------------


def case_view(engine: sa.Engine, case_ref: str) -> dict[str, Any]:
    """`case show REF --json` (design.md §8), plus each submission's timeline."""
    with transaction(engine) as session:
        refuse_if_erased(session, case_ref)
        case = queries.require_case(session, case_ref)
        assert case.id is not None
        submissions = queries.submissions_for_case(session, case.id)
        view: dict[str, Any] = {
            "case_ref": case.case_ref,
            "restricted": case.restricted,
            "created_at": iso_or_none(case.created_at),
            "submissions": [_submission_view(session, s, case) for s in submissions],
            "clocks": [
                {
                    "kind": c.kind,
                    "state": c.state,
                    "started_at": iso_or_none(c.started_at),
                    "due_at": iso_or_none(c.due_at),
                    "submission_id": c.submission_id,
                    "calendar": c.calendar,
                    "holidays_version": c.holidays_version,
                }
                for c in queries.clocks_for_case(session, case.id)
            ],
            "escalations": [
                {
                    "level": e.level,
                    "kind": e.kind,
                    "sent_at": iso_or_none(notice.sent_at) if notice else None,
                    "to": e.recipients,
                    "state": notice.state if notice else None,
                }
                for e, notice in queries.escalations_for_case(session, case.id)
            ],
        }
        if not case.restricted:
            view |= {"atw_ref": case.atw_ref, "prap_id": case.prap_id, "has_nino": bool(case.nino_hmac)}
        if case.erased_at:
            view["erased_at"] = iso_or_none(case.erased_at)
        return view


def _submission_view(session: Session, s: Submission, case: Case) -> dict[str, Any]:
    assert s.id is not None
    view: dict[str, Any] = {
        "id": s.id,
        "token": s.token,
        "report_type": s.report_type,
        "version": s.version,
        "supersedes": s.supersedes_id,
        "state": s.state,
        "message_id": s.message_id,
        "attempts": s.attempts,
        "sent_at": iso_or_none(s.sent_at),
        "sent_reply": s.sent_reply,
        "acknowledged_at": iso_or_none(s.acknowledged_at),
        "dwp_reference": s.dwp_reference,
        "rejected_at": iso_or_none(s.rejected_at),
        "rejection_reasons": list(s.rejection_reasons),
        "accepted_at": iso_or_none(s.accepted_at),
        "last_smtp": f"{s.last_smtp_code} {s.last_smtp_text}" if s.last_smtp_code else None,
        "preflight": {
            "passed": s.preflight.get("passed"),
            "findings": [
                {k: f.get(k) for k in ("check", "outcome", "page", "detail", "blocks")}
                for f in s.preflight.get("findings", [])
            ],
        },
    }
    if not case.restricted:
        view["timeline"] = queries.submission_timeline(session, s.id)
    return view


def tombstone_for(session: Session, case_ref: str) -> Tombstone | None:
    return session.exec(select(Tombstone).where(Tombstone.case_ref_hash == case_ref_hash(case_ref))).first()


def refuse_if_erased(session: Session, case_ref: str) -> None:
    tombstone = tombstone_for(session, case_ref)
    if tombstone is not None:
        when = tombstone.erased_at.date().isoformat()
        raise Conflict(
            f"case {queries.normalise_case_ref(case_ref)} was erased on {when} "
            f"(request {tombstone.request_ref}); nothing can be added or sent for it"
        )
