"""A provider's history for bench/scale.py, built straight through the store's tables with bulk inserts.

Years of work in one pass, in time order: cases, one document per submission, submissions in every state,
their clocks (the active ones planned and swept by the core's own `start_clock` and `due_actions`, so the
recorded escalations are the ones the daemon would have recorded), the notices those escalations queued,
DWP's replies and the rest of the inbox, and an audit event for every change, hash-chained by
`mailroom.store.audit`'s own digest. Rows go to every target database from one generator, a chunk at a
time (SQLite: executemany on the store's engine; PostgreSQL: COPY), so memory stays flat.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mailroom.core.config import Settings
from mailroom.core.deadlines import (
    ActionKind,
    ClockKind,
    ClockSnapshot,
    ClockState,
    due_actions,
    start_clock,
    state_moves,
)
from mailroom.service.clocks import clock_policy, work_calendar
from mailroom.store import audit
from mailroom.store.models import (
    AuditEvent,
    Case,
    Clock,
    Document,
    Escalation,
    InboundMessage,
    Notice,
    Submission,
    UtcDateTime,
)

YEARS = 5
TYPES = ("support-plan", "six-month-report", "monthly-update", "exit-report")
REASONS = ("font", "signature", "missing-dates", "wrong-customer")
MAILBOX = "imap:reports@provider.example/INBOX"
DWP = "atw.mhss@dwp.gov.uk"
TEAM = "team@provider.example"
PM = "pm@dwp.gov.uk"
CHUNK = 6_000  # submissions per chunk
ORDER = (Case, Document, Submission, Notice, Clock, Escalation, InboundMessage, AuditEvent)


@dataclass(frozen=True)
class Size:
    cases: int
    submissions: int
    inbound: int

    @classmethod
    def scaled(cls, scale: float) -> Size:
        return cls(
            max(50, int(100_000 * scale)), max(150, int(300_000 * scale)), max(500, int(1_000_000 * scale))
        )


@dataclass
class Counters:
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n


class Writer:
    """Bulk rows into one database: column values converted once per row for its driver."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.raw = engine.raw_connection()
        self._converters: dict[str, list[Callable[[Any], Any]]] = {}

    def _convert(self, table: sa.Table) -> list[Callable[[Any], Any]]:
        found = self._converters.get(table.name)
        if found is None:
            found = [self._converter(column) for column in table.columns]
            self._converters[table.name] = found
        return found

    def _converter(self, column: sa.Column[Any]) -> Callable[[Any], Any]:
        kind = column.type
        if isinstance(kind, sa.JSON):
            return lambda v: json.dumps(v)
        if not self.postgres and isinstance(kind, UtcDateTime):
            return lambda v: None if v is None else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if not self.postgres and isinstance(kind, sa.Boolean):
            return lambda v: None if v is None else int(v)
        return lambda v: v

    def write(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if not self.postgres and not self.raw.driver_connection.in_transaction:  # type: ignore[union-attr]
            self.raw.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
        names = [c.name for c in table.columns]
        converters = self._convert(table)
        values = [tuple(f(row.get(n)) for f, n in zip(converters, names, strict=True)) for row in rows]
        cursor = self.raw.cursor()
        if self.postgres:
            columns = ", ".join(f'"{n}"' for n in names)
            with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:  # type: ignore[attr-defined]
                for value in values:
                    copy.write_row(value)
        else:
            marks = ", ".join("?" for _ in names)
            columns = ", ".join(f'"{n}"' for n in names)
            cursor.executemany(f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})', values)
        cursor.close()

    def commit(self) -> None:
        if self.postgres:
            self.raw.commit()
        elif self.raw.driver_connection.in_transaction:  # type: ignore[union-attr]
            self.raw.driver_connection.execute("COMMIT")  # type: ignore[union-attr]

    def finish(self) -> None:
        """Sequences past the ids written (PostgreSQL), planner statistics, and the connection back."""
        cursor = self.raw.cursor()
        if self.postgres:
            for model in ORDER:
                table = model.__table__  # type: ignore[attr-defined]
                if "id" in table.columns and isinstance(table.columns["id"].type, sa.Integer):
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f'(SELECT COALESCE(MAX(id), 1) FROM "{table.name}"))'
                    )
        self.commit()
        cursor.execute("ANALYZE")
        self.commit()
        cursor.close()
        self.raw.close()


class History:
    """Generates the rows; `chunks()` yields {table: rows} in foreign-key order, oldest first."""

    def __init__(self, settings: Settings, size: Size, now: datetime, seed: int = 13) -> None:
        self.size = size
        self.now = now
        self.start = now - timedelta(days=365 * YEARS)
        self.span = now - self.start
        self.rng = random.Random(seed)
        self.calendar = work_calendar(settings)
        self.policy = clock_policy(settings)
        self.seq, self.head = 0, audit.GENESIS
        self.ids = {"clock": 0, "notice": 0, "escalation": 0, "inbound": 0}
        self.tail = max(60, size.submissions // 500)  # the newest: still in the queue, an outage's deferrals
        self.counts = Counters()
        self.sample_refs: list[str] = []

    # -- helpers ------------------------------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def _event(
        self,
        out: list[dict[str, Any]],
        at: datetime,
        entity: str,
        entity_id: int | None,
        action: str,
        from_state: str | None = None,
        to_state: str | None = None,
        detail: dict[str, Any] | None = None,
        actor: str = "daemon:outbox",
    ) -> None:
        self.seq += 1
        row: dict[str, Any] = {
            "seq": self.seq,
            "at": at,
            "actor": actor,
            "entity": entity,
            "entity_id": entity_id,
            "action": action,
            "from_state": from_state,
            "to_state": to_state,
            "detail": detail or {},
            "prev_hash": self.head,
        }
        row["hash"] = self.head = audit._digest(row)
        out.append(row)

    def _state(self, k: int, age: timedelta) -> str:
        m = self.size.submissions
        r = self.rng.random()
        if k >= m - self.tail:
            return ("deferred", "deferred", "queued", "sending", "received", "held", "sent")[k % 7]
        if age < timedelta(days=2):
            return "sent" if r < 0.3 else "acknowledged"
        if age < timedelta(days=9):
            return "acknowledged" if r < 0.9 else ("rejected" if r < 0.96 else "failed")
        superseded_possible = k + self.size.cases < m - self.tail
        for state, share in (
            ("superseded", 0.06 if superseded_possible else 0.0),
            ("rejected", 0.006),
            ("failed", 0.015),
            ("cancelled", 0.02),
            ("held", 0.004),
            ("preflight_failed", 0.01),
            ("unacknowledged", 0.003),
        ):
            if r < share:
                return state
            r -= share
        return "accepted"

    # -- the generator --------------------------------------------------------------------------------------

    def chunks(self) -> Iterator[dict[type[Any], list[dict[str, Any]]]]:
        m = self.size.submissions
        superseding: dict[int, int] = {}
        for first in range(0, m, CHUNK):
            out: dict[type[Any], list[dict[str, Any]]] = {model: [] for model in ORDER}
            active: list[tuple[dict[str, Any], dict[str, Any]]] = []
            for k in range(first, min(m, first + CHUNK)):
                self._submission(k, out, active, superseding)
            self._sweep(active, out)
            for model, rows in out.items():
                self.counts.add(model.__tablename__, len(rows))
            yield out

    def _submission(
        self,
        k: int,
        out: dict[type[Any], list[dict[str, Any]]],
        active: list[tuple[dict[str, Any], dict[str, Any]]],
        superseding: dict[int, int],
    ) -> None:
        n_cases = self.size.cases
        sid, case_id = k + 1, k % n_cases + 1
        created = self.start + self.span * (k / self.size.submissions)
        events = out[AuditEvent]
        if k < n_cases:
            ref = f"MH-{100000 + case_id}"
            out[Case].append(
                {
                    "id": case_id,
                    "case_ref": ref,
                    "atw_ref": f"ATW{case_id:08d}",
                    "prap_id": f"P{case_id:07d}",
                    "nino_hmac": f"{self.rng.getrandbits(256):064x}",
                    "restricted": case_id % 97 == 0,
                    "font_exception": False,
                    "created_at": created - timedelta(days=1),
                }
            )
            self._event(
                events, created - timedelta(days=1), "case", case_id, "case-added", actor="cli:intake"
            )
            if case_id % max(1, n_cases // 20) == 7:
                self.sample_refs.append(ref)
        age = self.now - created
        state = self._state(k, age)
        out[Document].append(
            {
                "id": sid,
                "case_id": case_id,
                "sha256": f"{sid:064x}",
                "size": 180_000,
                "pages": 4,
                "stored_path": f"/var/lib/mailroom/documents/reports/{sid:08d}.pdf.gpg",
                "encrypted": True,
                "created_at": created,
            }
        )
        sent = state not in (
            "received",
            "preflight_failed",
            "queued",
            "deferred",
            "sending",
            "held",
            "cancelled",
        )
        sub: dict[str, Any] = {
            "id": sid,
            "case_id": case_id,
            "document_id": sid,
            "report_type": TYPES[(k // n_cases) % len(TYPES)],
            "version": 1,
            "supersedes_id": superseding.pop(sid, None),
            "state": "accepted" if state == "unacknowledged" else state,
            "message_id": None
            if state in ("received", "preflight_failed")
            else f"<S-{sid:06d}.bench@provider.example>",
            "attempts": 1 if sent else (3 if state == "deferred" else 0),
            "preflight": {"pages": 4},
            "rejection_reasons": [],
            "created_at": created,
            "queued_at": created + timedelta(seconds=2) if sub_queued(state) else None,
        }
        if sub["supersedes_id"] is not None:
            sub["version"] = 2
        if state == "superseded":
            superseding[sid + n_cases] = sid
        if state in ("queued", "deferred"):
            sub["next_attempt_at"] = self.now + timedelta(minutes=20 + k % 40)
            if state == "deferred":
                sub["last_smtp_code"], sub["last_smtp_text"] = 421, "4.3.2 Service not available"
        if state == "sending":
            sub["lease_until"] = self.now + timedelta(minutes=10)
        self._event(
            events,
            created,
            "submission",
            sid,
            "stored",
            None,
            "received",
            {"sha256": f"{sid:064x}"},
            "cli:intake",
        )
        if state == "preflight_failed":
            self._event(
                events,
                created,
                "submission",
                sid,
                "preflight-failed",
                "received",
                state,
                {"blocking": ["font"]},
            )
        elif state != "received":
            self._event(events, created, "submission", sid, "preflight-passed", detail={"pages": 4})
            self._event(
                events,
                created,
                "submission",
                sid,
                "queued",
                "received",
                "queued",
                {"message_id": sub["message_id"]},
            )
        if sent:
            sent_at = created + timedelta(minutes=1)
            sub["sent_at"], sub["sent_reply"] = sent_at, "250 2.0.0 queued"
            self._event(events, sent_at, "submission", sid, "claimed", "queued", "sending", {"attempt": 1})
            self._event(events, sent_at, "submission", sid, "sent", "sending", "sent", {"reply": "250"})
        self._replies(sub, state, out, active)
        if state in ("cancelled", "held", "deferred"):
            self._event(events, created + timedelta(minutes=5), "submission", sid, state, "queued", state)
        out[Submission].append(sub)

    def _replies(
        self,
        sub: dict[str, Any],
        state: str,
        out: dict[type[Any], list[dict[str, Any]]],
        active: list[tuple[dict[str, Any], dict[str, Any]]],
    ) -> None:
        """DWP's answers, the clocks they meet, and the rest of the mail that came in around them."""
        sid, _case_id, events = sub["id"], sub["case_id"], out[AuditEvent]
        sent_at: datetime | None = sub.get("sent_at")
        wanted = self.size.inbound / self.size.submissions
        messages = int(wanted) + (1 if self.rng.random() < wanted - int(wanted) else 0)
        if sent_at is not None:
            acked = state in ("acknowledged", "accepted", "rejected", "superseded")
            self._clock(
                sub,
                ClockKind.ACKNOWLEDGEMENT,
                sent_at,
                out,
                active,
                met=sent_at + timedelta(hours=3) if acked else None,
                cancelled=state == "failed",
            )
            decision_met = sent_at + timedelta(days=7) if state in ("accepted", "unacknowledged") else None
            if state in ("rejected", "superseded"):
                decision_met = sent_at + timedelta(days=2)
            self._clock(
                sub, ClockKind.DECISION, sent_at, out, active, met=decision_met, cancelled=state == "failed"
            )
            if acked:
                sub["acknowledged_at"] = sent_at + timedelta(hours=3)
                self._message(sub, "acknowledgement", "matched", sub["acknowledged_at"], out)
                messages -= 1
                self._event(
                    events,
                    sub["acknowledged_at"],
                    "submission",
                    sid,
                    "acknowledged",
                    "sent",
                    "acknowledged",
                    actor="daemon:inbox",
                )
            if state in ("rejected", "superseded"):
                at = sent_at + timedelta(days=2)
                sub["rejected_at"], sub["rejection_reasons"] = at, [REASONS[sid % len(REASONS)]]
                sub["dwp_reference"] = f"DWP-{sid}"
                self._message(sub, "rejection", "matched", at, out)
                messages -= 1
                self._event(
                    events,
                    at,
                    "submission",
                    sid,
                    "rejected",
                    "acknowledged",
                    "rejected",
                    {"reasons": sub["rejection_reasons"]},
                    "daemon:inbox",
                )
                superseded = at + timedelta(days=3) if state == "superseded" else None
                self._clock(sub, ClockKind.CORRECTION, at, out, active, met=superseded)
                if superseded:
                    self._event(
                        events,
                        superseded,
                        "submission",
                        sid,
                        "superseded",
                        "rejected",
                        "superseded",
                        actor="daemon:clocks",
                    )
            if state == "accepted":
                sub["accepted_at"] = sent_at + timedelta(days=7)
                self._event(
                    events,
                    sub["accepted_at"],
                    "submission",
                    sid,
                    "accepted",
                    "acknowledged",
                    "accepted",
                    actor="daemon:clocks",
                )
            if state == "unacknowledged":
                sub["accepted_at"] = sent_at + timedelta(days=7)
            if state == "failed":
                sub["failed_at"] = sent_at + timedelta(minutes=5)
                self._message(sub, "bounce", "matched", sub["failed_at"], out)
                messages -= 1
                self._event(
                    events,
                    sub["failed_at"],
                    "submission",
                    sid,
                    "failed",
                    "sent",
                    "failed",
                    actor="daemon:inbox",
                )
        base = sub["created_at"]
        for n in range(max(0, messages)):
            at = base + timedelta(hours=5 + 7 * n)
            recent = self.now - at < timedelta(days=14)
            r = self.rng.random()
            if recent and r < 0.05:
                waiting = ("needs_review", "unmatched", "quarantined")[n % 3]
                self._message(sub, "other", waiting, at, out, review="a reply no rule read with certainty")
            elif not recent and r < 0.01:
                self._message(sub, "other", "assigned" if n % 2 else "dismissed", at, out, review="unclear")
            else:
                self._message(sub, "auto_reply" if r < 0.5 else "other", "ignored", at, out, linked=False)

    def _message(
        self,
        sub: dict[str, Any],
        kind: str,
        state: str,
        at: datetime,
        out: dict[type[Any], list[dict[str, Any]]],
        *,
        review: str | None = None,
        linked: bool = True,
    ) -> None:
        mid = self._next("inbound")
        out[InboundMessage].append(
            {
                "id": mid,
                "mailbox": MAILBOX,
                "uidvalidity": 1,
                "uid": mid,
                "message_id": f"<{mid}.dwp@dwp.gov.uk>",
                "raw_sha256": f"{mid:064x}",
                "raw_size": 4_000,
                "stored_path": f"/var/lib/mailroom/documents/inbound/{mid:08d}.eml.gpg",
                "state": state,
                "kind": kind,
                "trusted": linked,
                "trust_reason": "dmarc=pass" if linked else "",
                "sender": DWP if linked else "someone@example.org",
                "subject": f"RE: S-{sub['id']:06d}" if linked else "Out of office",
                "in_reply_to": sub["message_id"] if linked else None,
                "rules": [kind],
                "reasons": [],
                "cues": [],
                "review": review,
                "case_id": sub["case_id"] if linked or review else None,
                "submission_id": sub["id"] if linked else None,
                "match_method": "in-reply-to" if linked else None,
                "detail": "",
                "received_at": at,
                "processed_at": at + timedelta(seconds=1),
            }
        )
        events = out[AuditEvent]
        self._event(events, at, "message", mid, "received", None, "new", {"kind": kind}, "daemon:inbox")
        self._event(
            events,
            at,
            "message",
            mid,
            state if state in ("matched", "ignored") else "flagged",
            "new",
            state,
            actor="daemon:inbox",
        )

    def _clock(
        self,
        sub: dict[str, Any],
        kind: ClockKind,
        at: datetime,
        out: dict[type[Any], list[dict[str, Any]]],
        active: list[tuple[dict[str, Any], dict[str, Any]]],
        *,
        met: datetime | None,
        cancelled: bool = False,
    ) -> dict[str, Any]:
        cid = self._next("clock")
        closed = met or (at + timedelta(minutes=5) if cancelled else None)
        if closed is None:
            plan = start_clock(kind, at, self.policy, self.calendar)
            due = plan.due_at
        else:
            due = at + timedelta(days={"acknowledgement": 1, "decision": 7, "correction": 7}[kind] * 7 // 5)
        row = {
            "id": cid,
            "kind": kind.value,
            "state": "met" if met else ("cancelled" if cancelled else "running"),
            "case_id": sub["case_id"],
            "submission_id": sub["id"],
            "started_at": at,
            "due_at": due,
            "calendar": self.calendar.name,
            "holidays_version": self.calendar.holidays_version,
            "closed_at": closed,
        }
        out[Clock].append(row)
        self._event(
            out[AuditEvent],
            at,
            "clock",
            cid,
            "clock-started",
            None,
            "running",
            {"kind": kind.value},
            "daemon:clocks",
        )
        if closed is not None:
            self._event(
                out[AuditEvent],
                closed,
                "clock",
                cid,
                f"clock-{row['state']}",
                "running",
                row["state"],
                {"kind": kind.value},
                "daemon:clocks",
            )
        else:
            active.append((row, sub))
        return row

    def _sweep(
        self, active: list[tuple[dict[str, Any], dict[str, Any]]], out: dict[type[Any], list[dict[str, Any]]]
    ) -> None:
        """What the daemon's sweeps recorded for the clocks still open: the core decides, as it would have."""
        snaps = {
            row["id"]: ClockSnapshot(
                row["id"],
                ClockKind(row["kind"]),
                ClockState.RUNNING,
                row["started_at"],
                row["due_at"],
                row["submission_id"],
                "",
            )
            for row, _ in active
        }
        by_id = {row["id"]: (row, sub) for row, sub in active}
        for action in due_actions(snaps.values(), self.now, self.calendar, self.policy):
            row, sub = by_id[action.clock_id]
            at = action.due_at
            notice_id = None
            if action.kind in (ActionKind.REMINDER, ActionKind.ESCALATION):
                notice_id = self._next("notice")
                out[Notice].append(
                    {
                        "id": notice_id,
                        "kind": action.kind.value,
                        "case_id": sub["case_id"],
                        "submission_id": sub["id"],
                        "recipients": [TEAM] if action.kind == ActionKind.REMINDER else [PM, TEAM],
                        "subject": f"{action.kind.value}: S-{sub['id']:06d} ({row['kind']})",
                        "body": "The clock has run out; please act.",
                        "message_id": f"<{action.kind.value}.{notice_id}.bench@provider.example>",
                        "in_reply_to": sub["message_id"],
                        "state": "sent",
                        "attempts": 1,
                        "created_at": at,
                        "sent_at": at + timedelta(seconds=30),
                        "sent_reply": "250 2.0.0 queued",
                    }
                )
                self._event(
                    out[AuditEvent],
                    at,
                    "notice",
                    notice_id,
                    "queued",
                    None,
                    "queued",
                    {"kind": action.kind.value},
                    "daemon:clocks",
                )
            out[Escalation].append(
                {
                    "id": self._next("escalation"),
                    "clock_id": row["id"],
                    "level": action.level,
                    "kind": action.kind.value,
                    "notice_id": notice_id,
                    "recipients": [],
                    "created_at": at,
                }
            )
            for target in state_moves(ClockState(row["state"]), action.kind):
                self._event(
                    out[AuditEvent],
                    at,
                    "clock",
                    row["id"],
                    f"clock-{target}",
                    row["state"],
                    target.value,
                    {"level": action.level},
                    "daemon:clocks",
                )
                row["state"] = target.value
                if target == ClockState.MET:
                    row["closed_at"] = at
            if action.kind == ActionKind.ACCEPT and sub["state"] in ("sent", "acknowledged"):
                self._event(
                    out[AuditEvent],
                    at,
                    "submission",
                    sub["id"],
                    "accepted",
                    sub["state"],
                    "accepted",
                    actor="daemon:clocks",
                )
                sub["state"], sub["accepted_at"] = "accepted", at


def sub_queued(state: str) -> bool:
    return state not in ("received", "preflight_failed")


def build(
    settings: Settings, size: Size, now: datetime, engines: Sequence[Engine], progress: Callable[[str], None]
) -> History:
    """Write the whole history into every engine (schema already at head); returns the generator's counts."""
    history = History(settings, size, now)
    writers = [Writer(engine) for engine in engines]
    done = 0
    for chunk in history.chunks():
        for writer in writers:
            for model in ORDER:
                writer.write(model.__table__, chunk[model])  # type: ignore[attr-defined]
            writer.commit()
        done += len(chunk[Submission])
        if done % (CHUNK * 10) == 0:
            progress(f"{done:,} of {size.submissions:,} submissions")
    for writer in writers:
        writer.finish()
    return history
