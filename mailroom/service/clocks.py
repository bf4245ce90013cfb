"""Clocks in the store: started and met by events, swept for reminders and escalations.

The arithmetic is pure (`mailroom.workdays`, `mailroom.deadlines`); this module writes its results. Every
reminder or escalation is one `escalations` row per (clock, level) under a unique constraint, written in
the same transaction as the notice it queues, so it goes out once: across restarts and across two
daemons on one database.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from mailroom.core.config import Settings
from mailroom.core.deadlines import (
    OPEN_STATES,
    ActionKind,
    ClockKind,
    ClockSnapshot,
    ClockState,
    DueAction,
    can_move,
    due_actions,
    start_clock,
    state_moves,
)
from mailroom.core.errors import ConfigError
from mailroom.core.states import SUBMISSION_MOVES, SubmissionState
from mailroom.core.workdays import WorkCalendar
from mailroom.service.notices import queue_notice
from mailroom.service.views import clock_policy, clock_preview, work_calendar
from mailroom.service.wording import Wording
from mailroom.store import audit, queries
from mailroom.store.engine import transaction
from mailroom.store.listings import Page
from mailroom.store.models import Case, Clock, Escalation, Submission
from mailroom.store.readonly import ReadOnly
from mailroom.store.sweep import could_fire, fired_levels, open_clocks

log = logging.getLogger(__name__)
ACTOR = "daemon:clocks"

# What each clock waits for, in words for the notices.


def work_calendar_in_child(settings: Settings) -> WorkCalendar:
    """The same calendar, computed by a short-lived child process.

    The holidays package imports every country it knows (~9 MB) to build one; the long-running daemon
    keeps only the dates. Errors in the child are the same config errors as in-process.
    """
    c = settings.calendar
    request = json.dumps({"division": c.division, "day_end": c.day_end.isoformat(), "tz": c.timezone})
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CALENDAR_CHILD],
            input=request,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        answer = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return work_calendar(settings)  # the child could not run: build it here, at the memory cost
    if "error" in answer:
        raise ConfigError(settings.source, "[calendar]", answer["error"])
    return WorkCalendar(
        name=c.division,
        bank_holidays=frozenset(date.fromisoformat(d) for d in answer["dates"]),
        extra_closures=frozenset(c.extra_closures),
        tz=ZoneInfo(c.timezone),
        day_end=c.day_end,
        first_year=answer["first_year"],
        last_year=answer["last_year"],
        holidays_version=answer["version"],
    )


_CALENDAR_CHILD = """
import json, sys
from datetime import time
from mailroom.core.workdays import WorkCalendar
ask = json.load(sys.stdin)
try:
    cal = WorkCalendar.for_division(ask["division"], day_end=time.fromisoformat(ask["day_end"]), tz=ask["tz"])
except ValueError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    dates = sorted(d.isoformat() for d in cal.bank_holidays)
    print(json.dumps({"dates": dates, "version": cal.holidays_version,
                      "first_year": cal.first_year, "last_year": cal.last_year}))
"""


@dataclass(frozen=True)
class SweepResult:
    reminders: int = 0
    escalations: int = 0
    accepted: int = 0
    skipped: int = 0


REPLY_RECEIVED = "reply received"  # why an acknowledgement clock is met, whatever the reply was


def close_clocks(
    session: Session,
    submission_id: int | None,
    kind: ClockKind | None,
    target: ClockState,
    *,
    at: datetime,
    why: str,
    actor: str = ACTOR,
) -> None:
    """Meet or cancel every active clock of a submission (of one kind, or all): running, breached and
    escalated alike, so nothing keeps escalating after a resubmission, a hold, a cancel or an erasure."""
    kinds = {kind: why} if kind is not None else dict.fromkeys(ClockKind, why)
    _close(session, submission_id, kinds, target, at=at, actor=actor)


def _close(
    session: Session,
    submission_id: int | None,
    kinds: Mapping[ClockKind, str],
    target: ClockState,
    *,
    at: datetime,
    actor: str = ACTOR,
) -> None:
    """`close_clocks` for several kinds at once, each with its own reason: one query, clocks in the
    order they were started."""
    known: list[Clock] | None = session.info.get(_OPEN_BY_SUBMISSION, {}).get(submission_id)
    if known is not None:  # read ahead for a catch-up's group (`read_open_clocks`)
        clocks = [c for c in known if c.state in OPEN_STATES and ClockKind(c.kind) in kinds]
    else:
        # Without flushing the caller's pending changes first (a catch-up's message would flush twice):
        # the answer cannot depend on them. Every new clock is flushed when it starts (`_start`), and a
        # clock closed but not yet flushed comes back as the same object, whose state `_move_clock` checks.
        with session.no_autoflush:
            found = session.exec(_OPEN_CLOCKS_OF, params={"submission": submission_id, "kinds": list(kinds)})
            clocks = list(found.all())
    for clock in clocks:
        why = kinds[ClockKind(clock.kind)]
        _move_clock(session, clock, target, at=at, action=f"clock-{target}", detail={"why": why}, actor=actor)


# Open clocks in the order they were started. Built once, and the one-submission form with bound
# parameters: a catch-up asks it for most messages, and building a statement cost more than running it.
_OPEN_CLOCKS = select(Clock).where(col(Clock.state).in_(list(OPEN_STATES))).order_by(col(Clock.id))
_OPEN_CLOCKS_OF = _OPEN_CLOCKS.where(
    Clock.submission_id == sa.bindparam("submission"),
    col(Clock.kind).in_(sa.bindparam("kinds", expanding=True)),
)


# The open clocks of a catch-up group's submissions, read once for the group: by submission id, in the
# order they were started; kept in the session for its transaction, forgotten at any rollback.
_OPEN_BY_SUBMISSION = "mailroom.service.clocks.open"


def read_open_clocks(session: Session, submission_ids: Iterable[int]) -> None:
    """Read the open clocks of these submissions with one query, and answer `close_clocks` for them from
    the session until its transaction ends (clocks started meanwhile are added as they start). On
    PostgreSQL the rows are locked, as a sweep locks them, so neither changes what the other is about to
    close or escalate; a rollback (a savepoint's too) forgets them, and the queries answer again."""
    ids = sorted(set(submission_ids))
    index: dict[int, list[Clock]] = session.info.setdefault(_OPEN_BY_SUBMISSION, {})
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = _OPEN_CLOCKS.where(col(Clock.submission_id).in_(chunk)).with_for_update(of=Clock)
        for submission_id in chunk:
            index.setdefault(submission_id, [])
        for clock in session.exec(query):
            index[clock.submission_id].append(clock)


@sa.event.listens_for(Session, "after_rollback")
def _forget_open_clocks(session: Session) -> None:
    session.info.pop(_OPEN_BY_SUBMISSION, None)


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_open_clocks_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_OPEN_BY_SUBMISSION, None)


def _move_clock(
    session: Session,
    clock: Clock,
    target: ClockState,
    *,
    at: datetime,
    action: str,
    detail: dict[str, Any] | None = None,
    actor: str = ACTOR,
) -> None:
    current = ClockState(clock.state)
    if not can_move(current, target):
        return
    clock.state = target
    if target in (ClockState.MET, ClockState.CANCELLED):
        clock.closed_at = at
    session.add(clock)
    audit.record(
        session,
        at=at,
        actor=actor,
        entity="clock",
        entity_id=clock.id,
        action=action,
        from_state=current,
        to_state=target,
        detail={"kind": clock.kind, **(detail or {})},
    )


class ClockKeeper:
    def __init__(self, settings: Settings, calendar: WorkCalendar | None = None) -> None:
        self.settings = settings
        self.calendar = calendar or work_calendar(settings)
        self.policy = clock_policy(settings)
        self.wording = Wording(settings, self.calendar)
        self.wording.check()  # a broken site template stops the start, not the first escalation

    # -- events --------------------------------------------------------------------------------------------

    def start(self, session: Session, sub: Submission, kind: ClockKind, *, at: datetime) -> Clock:
        return self._start(session, [(sub, kind)], at=at)[0]

    def _start(
        self, session: Session, wanted: Sequence[tuple[Submission, ClockKind]], *, at: datetime
    ) -> list[Clock]:
        """Start clocks that all begin at `at`: one plan per kind, one flush for the lot."""
        plans = {kind: start_clock(kind, at, self.policy, self.calendar) for kind in {k for _, k in wanted}}
        clocks = []
        for sub, kind in wanted:
            assert sub.id is not None
            plan = plans[kind]
            clocks.append(
                Clock(
                    kind=kind,
                    state=ClockState.RUNNING,
                    case_id=sub.case_id,
                    submission_id=sub.id,
                    started_at=plan.started_at,
                    due_at=plan.due_at,
                    calendar=plan.calendar_name,
                    holidays_version=plan.holidays_version,
                )
            )
        session.add_all(clocks)
        session.flush()  # the audit events name the clocks' ids
        read_ahead: dict[int, list[Clock]] = session.info.get(_OPEN_BY_SUBMISSION, {})
        for clock in clocks:
            if clock.submission_id in read_ahead:
                read_ahead[clock.submission_id].append(clock)
        for clock in clocks:
            plan = plans[ClockKind(clock.kind)]
            audit.record(
                session,
                at=at,
                actor=ACTOR,
                entity="clock",
                entity_id=clock.id,
                action="clock-started",
                to_state=ClockState.RUNNING,
                detail={
                    "kind": clock.kind,
                    "submission": clock.submission_id,
                    "due_at": plan.due_at.isoformat(),
                    "calendar": plan.calendar_name,
                    "holidays": plan.holidays_version,
                },
            )
        return clocks

    def on_reports_sent(self, session: Session, subs: Sequence[Submission], *, now: datetime) -> None:
        """Reports left for DWP: expect an acknowledgement for each, and open its decision window."""
        if not subs:
            return
        self._start(
            session,
            [(sub, kind) for sub in subs for kind in (ClockKind.ACKNOWLEDGEMENT, ClockKind.DECISION)],
            at=now,
        )
        for sub in subs:
            if sub.supersedes_id is not None:
                self._supersede(session, sub, now=now)

    def _supersede(self, session: Session, sub: Submission, *, now: datetime) -> None:
        assert sub.supersedes_id is not None
        old = queries.get_submission(session, sub.supersedes_id)
        if SubmissionState.SUPERSEDED in SUBMISSION_MOVES[SubmissionState(old.state)]:
            queries.move_submission(
                session,
                old,
                SubmissionState.SUPERSEDED,
                now=now,
                actor=ACTOR,
                action="superseded",
                detail={"by": sub.id},
            )
        # The resubmission is what the correction clock waited for; the old report's other clocks end too.
        close_clocks(session, old.id, None, ClockState.MET, at=now, why=f"superseded by submission {sub.id}")

    def on_reply(self, session: Session, sub: Submission, *, at: datetime) -> None:
        """Any trusted reply from DWP about the submission meets its acknowledgement clock."""
        close_clocks(session, sub.id, ClockKind.ACKNOWLEDGEMENT, ClockState.MET, at=at, why=REPLY_RECEIVED)

    def on_rejected(self, session: Session, sub: Submission, *, at: datetime) -> None:
        """A rejection is a reply (the acknowledgement clock is met) and DWP's decision (so is that one);
        the correction clock starts."""
        whys = {ClockKind.ACKNOWLEDGEMENT: REPLY_RECEIVED, ClockKind.DECISION: "rejection received"}
        _close(session, sub.id, whys, ClockState.MET, at=at)
        self.start(session, sub, ClockKind.CORRECTION, at=at)

    def on_failed(self, session: Session, sub: Submission, *, at: datetime) -> None:
        close_clocks(session, sub.id, None, ClockState.CANCELLED, at=at, why="delivery failed")

    # -- the sweep -------------------------------------------------------------------------------------------

    def sweep(self, engine: sa.Engine, now: datetime) -> SweepResult:
        """Fire every level now due, once. Safe to run at any time and from two daemons at once."""
        counts = {"reminders": 0, "escalations": 0, "accepted": 0, "skipped": 0}
        with transaction(engine) as session:
            clocks = self._active(session, lock=True, now=now)
            snapshots = [snap for snap, _, _ in clocks.values()]
            for action in due_actions(snapshots, now, self.calendar, self.policy):
                _, clock, case = clocks[action.clock_id]
                counts[self._fire(session, clock, case, action, now=now)] += 1
        result = SweepResult(**counts)
        if any(counts.values()):
            log.info("deadline sweep: %s", result)
        return result

    def preview(
        self, engine: sa.Engine, as_of: date, *, after: int | None = None, limit: int = 50
    ) -> Page[dict[str, Any]]:
        """`mailroom clocks --as-of DATE`: a page of open clocks by due time, and what would fire on that
        day. Changes nothing."""
        with ReadOnly.of_engine(engine) as reader:
            return clock_preview(reader, self.policy, self.calendar, as_of, after=after, limit=limit)

    def _active(
        self, session: Session, *, lock: bool, now: datetime | None = None
    ) -> dict[int, tuple[ClockSnapshot, Clock, Case]]:
        """Open clocks; with `now`, only those that can have a level due by then (`could_fire`)."""
        query = open_clocks()
        if now is not None:
            query = query.where(could_fire(self.policy, self.calendar, now))
        if lock:
            # PostgreSQL: a second daemon waits here, then sees the levels this one recorded. The trail's
            # lock first, the order every writer takes them in: a sweep that locked a clock and then
            # waited for the trail, while an ingest held the trail and waited for that clock, could deadlock.
            audit.hold_the_trail(session)
            query = query.with_for_update(of=Clock)
        rows = sorted(session.exec(query).all(), key=lambda row: (row[0].due_at, row[0].id))
        fired = fired_levels(session, [clock.id for clock, _ in rows if clock.id is not None])
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
                fired_levels=fired.get(clock.id, frozenset()),
            )
            result[clock.id] = (snap, clock, case)
        return result

    def _fire(self, session: Session, clock: Clock, case: Case, action: DueAction, *, now: datetime) -> str:
        sub = queries.get_submission(session, clock.submission_id)
        recipients: Sequence[str] = ()
        notice_id = None
        if action.kind in (ActionKind.REMINDER, ActionKind.ESCALATION):
            recipients = self._recipients(case, action.kind)
            words = (
                self.wording.reminder(case, sub, clock, level=action.level, now=now)
                if action.kind == ActionKind.REMINDER
                else self.wording.escalation(case, sub, clock, level=action.level)
            )
            notice = queue_notice(
                session,
                settings=self.settings,
                now=now,
                kind=action.kind,
                recipients=recipients,
                subject=words.subject,
                body=words.body,
                case_id=case.id,
                submission_id=sub.id,
                in_reply_to=sub.message_id,
            )
            notice_id = notice.id
        session.add(
            Escalation(
                clock_id=action.clock_id,
                level=action.level,
                kind=action.kind,
                notice_id=notice_id,
                recipients=list(recipients),
                created_at=now,
            )
        )
        for target in state_moves(ClockState(clock.state), action.kind):
            _move_clock(
                session, clock, target, at=now, action=f"clock-{target}", detail={"level": action.level}
            )
        if action.kind == ActionKind.ACCEPT:
            self._accept(session, sub, now=now)
        session.flush()  # the unique (clock, level) constraint bites here, inside this transaction
        return {"reminder": "reminders", "escalation": "escalations", "accept": "accepted"}.get(
            action.kind, "skipped"
        )

    def _accept(self, session: Session, sub: Submission, *, now: datetime) -> None:
        if SubmissionState.ACCEPTED in SUBMISSION_MOVES[SubmissionState(sub.state)] and sub.state in (
            SubmissionState.SENT,
            SubmissionState.ACKNOWLEDGED,
        ):
            sub.accepted_at = now
            queries.move_submission(
                session,
                sub,
                SubmissionState.ACCEPTED,
                now=now,
                actor=ACTOR,
                action="accepted",
                detail={"note": "decision window closed; no rejection received"},
            )

    def _recipients(self, case: Case, kind: ActionKind) -> tuple[str, ...]:
        team = self.settings.provider.team_address
        if kind == ActionKind.REMINDER:
            return (team,)
        manager = case.performance_manager or self.settings.escalation.performance_manager
        return (manager, team) if manager.lower() != team.lower() else (manager,)
