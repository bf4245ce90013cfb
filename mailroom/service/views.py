"""What the read-only commands show (`queue`, `inbox`, `clocks`, `escalations`, `case show`): one page of a
listing or one case, read in one snapshot, never written.

Light on purpose (issues 12 and 13): plain SQL over a `ReadOnly` connection and the pure core, so a listing
loads no SQLAlchemy, no ORM models, no daemon wiring, no classifier and no gpg before its first query. The
services that also answer these questions (`Mailroom.queue`, `ReviewDesk.listing`, `ClockKeeper.preview`,
`case_view`) call these functions over their engine's connection, so the CLI's light path and the
services' answers cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from mailroom.core.config import ClockSettings, EscalationSettings, Settings
from mailroom.core.deadlines import (
    ClockKind,
    ClockPolicy,
    ClockSnapshot,
    ClockState,
    DueAction,
    preview,
)
from mailroom.core.errors import ConfigError, InputError, NotFound
from mailroom.core.identity import case_ref_hash, erased_refusal, normalise_case_ref
from mailroom.core.states import WAITING, InboundState, SubmissionState
from mailroom.core.workdays import WorkCalendar
from mailroom.store.listings import (
    Page,
    active_clocks_listing,
    escalations_listing,
    inbound_listing,
    merge_pages,
    page_by_due,
    page_by_id,
    submissions_listing,
)
from mailroom.store.readonly import ReadOnly, Row, flag, from_json, iso, when

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
    reader: ReadOnly, *, state: str | None = None, after: int | None = None, limit: int = 50
) -> Page[dict[str, Any]]:
    """`mailroom queue`: a page of submissions by id, and how many follow it."""
    if state is not None and state not in set(SubmissionState):
        known = ", ".join(s.value for s in SubmissionState)
        raise InputError(f"unknown state {state!r} (known: {known})")
    with reader.snapshot():
        found = page_by_id(reader, submissions_listing(state), after=after, limit=limit)
    return found.map(_queued)


def escalations_page(reader: ReadOnly, *, after: int | None = None, limit: int = 50) -> Page[dict[str, Any]]:
    """Reminders and escalations fired, newest first, with the state of each notice: one page."""
    with reader.snapshot():
        found = page_by_id(reader, escalations_listing(), after=after, limit=limit, newest_first=True)
    return found.map(_escalation)


def inbox_page(
    reader: ReadOnly, *, state: str | None, after: int | None = None, limit: int = 50
) -> Page[dict[str, Any]]:
    """`mailroom inbox`: a page of messages waiting for a person by default, or of those in `state`."""
    if state is not None and state not in set(InboundState):
        raise InputError(f"unknown state {state!r} (known: {', '.join(s.value for s in InboundState)})")
    wanted = [state] if state else sorted(WAITING)
    with reader.snapshot():
        # A page per state, merged: for `state IN (...) ORDER BY id` SQLite's planner walks the whole
        # table in id order (0.3 s at 1,000,000 messages); one state's page reads only its index.
        found = merge_pages(
            [page_by_id(reader, inbound_listing([s]), after=after, limit=limit) for s in wanted], limit
        )
    return found.map(_listed)


def clock_preview(
    reader: ReadOnly,
    policy: ClockPolicy,
    calendar: WorkCalendar,
    as_of: date,
    *,
    after: int | None = None,
    limit: int = 50,
) -> Page[dict[str, Any]]:
    """`mailroom clocks --as-of DATE`: a page of open clocks by due time, and what would fire on that
    day. Changes nothing."""
    with reader.snapshot():
        found = page_by_due(reader, active_clocks_listing(), after=after, limit=limit)
        fired = fired_levels(reader, [int(row["id"]) for row in found.rows])
    snapshots = [clock_snapshot(row, fired.get(int(row["id"]), frozenset())) for row in found.rows]
    firing: dict[int, list[DueAction]] = {}
    for action in preview(snapshots, as_of, calendar, policy):
        firing.setdefault(action.clock_id, []).append(action)
    rows = [
        {
            "clock_id": snap.id,
            "case_ref": snap.case_ref,
            "submission_id": snap.submission_id,
            "kind": snap.kind,
            "state": snap.state,
            "started_at": snap.started_at.isoformat(),
            "due_at": snap.due_at.isoformat(),
            "calendar": row["calendar"],
            "fires": [
                {"level": a.level, "action": a.kind, "at": a.due_at.isoformat()}
                for a in firing.get(snap.id, [])
            ],
        }
        for snap, row in zip(snapshots, found.rows, strict=True)
    ]
    return Page(rows, found.more, found.last)


def fired_levels(reader: ReadOnly, clock_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """The levels already recorded for each of these clocks (the escalations' unique (clock, level))."""
    fired: dict[int, set[str]] = {}
    for start in range(0, len(clock_ids), 500):
        for row in reader.rows(
            "SELECT clock_id, level FROM escalations WHERE clock_id IN :ids",
            {"ids": list(clock_ids[start : start + 500])},
        ):
            fired.setdefault(int(row["clock_id"]), set()).add(row["level"])
    return {clock_id: frozenset(levels) for clock_id, levels in fired.items()}


def clock_snapshot(row: Row, fired: frozenset[str]) -> ClockSnapshot:
    """The core's view of a clock row read by `active_clocks_listing`."""
    started, due = when(row["started_at"]), when(row["due_at"])
    assert started is not None and due is not None
    return ClockSnapshot(
        id=int(row["id"]),
        kind=ClockKind(row["kind"]),
        state=ClockState(row["state"]),
        started_at=started,
        due_at=due,
        submission_id=int(row["submission_id"]),
        case_ref=row["case_ref"],
        fired_levels=fired,
    )


def _smtp(row: Row) -> str | None:
    return f"{row['last_smtp_code']} {row['last_smtp_text']}" if row["last_smtp_code"] else None


def _queued(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "case_ref": row["case_ref"],
        "report_type": row["report_type"],
        "version": row["version"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": iso(row["next_attempt_at"]),
        "last_smtp": _smtp(row),
        "message_id": row["message_id"],
    }


def _escalation(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "case_ref": row["case_ref"],
        "submission_id": row["submission_id"],
        "clock": row["clock"],
        "level": row["level"],
        "kind": row["kind"],
        "to": from_json(row["recipients"]),
        "created_at": iso(row["created_at"]),
        "notice_state": row["notice_state"],
        "sent_at": iso(row["sent_at"]),
    }


def _listed(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "state": row["state"],
        "kind": row["kind"],
        "trusted": flag(row["trusted"]),
        "sender": row["sender"],
        "received_at": iso(row["received_at"]),
        "case_ref": row["case_ref"],
        "match_method": row["match_method"],
        "submission_id": row["submission_id"],
        "rules": from_json(row["rules"]),
        "cues": from_json(row["cues"]),
        "reasons": from_json(row["reasons"]),
        "review": row["review"],
        "applied_as": row["applied_as"],
        "detail": row["detail"],
    }


# -- one case ----------------------------------------------------------------------------------------------


def case_view(reader: ReadOnly, case_ref: str, *, timelines: int | None = None) -> dict[str, Any]:
    """`case show REF --json` (design.md §8), plus the timeline of each submission, or of the newest
    `timelines` of them (the screen's view: a case with hundreds of reports would print hundreds)."""
    ref = normalise_case_ref(case_ref)
    with reader.snapshot():
        tombstone = reader.rows(
            "SELECT request_ref, erased_at FROM tombstones WHERE case_ref_hash = :digest",
            {"digest": case_ref_hash(case_ref)},
        )
        if tombstone:
            raise erased_refusal(ref, when(tombstone[0]["erased_at"]), tombstone[0]["request_ref"])
        cases = reader.rows(
            "SELECT id, case_ref, atw_ref, prap_id, nino_hmac, restricted, created_at, erased_at "
            "FROM cases WHERE case_ref = :ref",
            {"ref": ref},
        )
        if not cases:
            raise NotFound(f"no case {ref}")
        case = cases[0]
        restricted = flag(case["restricted"])
        submissions = reader.rows(
            "SELECT * FROM submissions WHERE case_id = :case ORDER BY id", {"case": case["id"]}
        )
        shown = [int(s["id"]) for s in submissions]
        if timelines is not None:
            shown = shown[len(shown) - timelines :] if timelines else []
        events = {} if restricted else timelines_of(reader, shown)
        clocks = reader.rows("SELECT * FROM clocks WHERE case_id = :case ORDER BY id", {"case": case["id"]})
        escalations = reader.rows(
            "SELECT e.level, e.kind, e.recipients, n.sent_at, n.state FROM escalations e "
            "JOIN clocks k ON k.id = e.clock_id LEFT JOIN notices n ON n.id = e.notice_id "
            "WHERE k.case_id = :case ORDER BY e.id",
            {"case": case["id"]},
        )
    view: dict[str, Any] = {
        "case_ref": case["case_ref"],
        "restricted": restricted,
        "created_at": iso(case["created_at"]),
        "submissions": [_submission_view(s, events.get(int(s["id"])), restricted) for s in submissions],
        "clocks": [
            {
                "kind": c["kind"],
                "state": c["state"],
                "started_at": iso(c["started_at"]),
                "due_at": iso(c["due_at"]),
                "submission_id": c["submission_id"],
                "calendar": c["calendar"],
                "holidays_version": c["holidays_version"],
            }
            for c in clocks
        ],
        "escalations": [
            {
                "level": e["level"],
                "kind": e["kind"],
                "sent_at": iso(e["sent_at"]),
                "to": from_json(e["recipients"]),
                "state": e["state"],
            }
            for e in escalations
        ],
    }
    if not restricted:
        view |= {"atw_ref": case["atw_ref"], "prap_id": case["prap_id"], "has_nino": bool(case["nino_hmac"])}
    if case["erased_at"]:
        view["erased_at"] = iso(case["erased_at"])
    return view


def timelines_of(reader: ReadOnly, submission_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The audit events of these submissions, oldest first, by submission: the evidence an auditor asks
    for. One query per 500 submissions (ix_audit_events_entity_entity_id_seq), not one each."""
    found: dict[int, list[dict[str, Any]]] = {sid: [] for sid in submission_ids}
    for start in range(0, len(submission_ids), 500):
        for e in reader.rows(
            "SELECT entity_id, at, action, from_state, to_state, actor, detail FROM audit_events "
            "WHERE entity = 'submission' AND entity_id IN :ids ORDER BY seq",
            {"ids": list(submission_ids[start : start + 500])},
        ):
            detail = from_json(e["detail"])
            found[int(e["entity_id"])].append(
                {
                    "at": iso(e["at"]),
                    "action": e["action"],
                    "from": e["from_state"],
                    "to": e["to_state"],
                    "actor": e["actor"],
                    **({"detail": detail} if detail else {}),
                }
            )
    return found


def _submission_view(s: Row, timeline: list[dict[str, Any]] | None, restricted: bool) -> dict[str, Any]:
    preflight = from_json(s["preflight"]) or {}
    view: dict[str, Any] = {
        "id": s["id"],
        "token": f"S-{int(s['id']):06d}",
        "report_type": s["report_type"],
        "version": s["version"],
        "supersedes": s["supersedes_id"],
        "state": s["state"],
        "message_id": s["message_id"],
        "attempts": s["attempts"],
        "sent_at": iso(s["sent_at"]),
        "sent_reply": s["sent_reply"],
        "acknowledged_at": iso(s["acknowledged_at"]),
        "dwp_reference": s["dwp_reference"],
        "rejected_at": iso(s["rejected_at"]),
        "rejection_reasons": list(from_json(s["rejection_reasons"]) or []),
        "accepted_at": iso(s["accepted_at"]),
        "last_smtp": _smtp(s),
        "preflight": {
            "passed": preflight.get("passed"),
            "findings": [
                {k: f.get(k) for k in ("check", "outcome", "page", "detail", "blocks")}
                for f in preflight.get("findings", [])
            ],
        },
    }
    if not restricted and timeline is not None:
        view["timeline"] = timeline
    return view
