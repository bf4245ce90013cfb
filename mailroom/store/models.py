"""Table models. All of them live here (SQLModel's advice, to avoid import cycles).

Times are stored in UTC and come back timezone-aware on SQLite and PostgreSQL alike. States are stored as
their readable text. No column ever holds a clear NI number; `nino_hmac` is a keyed hash for matching.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Column, Field, SQLModel


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A DateTime that refuses naive values and always returns aware UTC, also on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index))


def _json(default: Any) -> Any:
    return Field(default_factory=lambda: default.copy(), sa_column=Column(sa.JSON(), nullable=False))


class Case(SQLModel, table=True):
    __tablename__ = "cases"

    id: int | None = Field(default=None, primary_key=True)
    case_ref: str = Field(max_length=64, unique=True, index=True)
    atw_ref: str | None = Field(default=None, max_length=64, index=True)
    prap_id: str | None = Field(default=None, max_length=64, index=True)
    nino_hmac: str | None = Field(default=None, max_length=64, index=True)
    performance_manager: str | None = Field(default=None, max_length=254)
    restricted: bool = False  # MAPPA / keeping interactions safe: no automatic sending, details hidden
    font_exception: bool = False  # Annex F allows another format where the customer's disability needs it
    created_at: datetime = _when(nullable=False)
    erased_at: datetime | None = _when()
    erasure_request_ref: str | None = Field(default=None, max_length=128)


class Document(SQLModel, table=True):
    __tablename__ = "documents"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    sha256: str = Field(max_length=64, index=True)
    size: int
    pages: int | None = None
    stored_path: str | None = Field(default=None, max_length=1024)  # None once purged or erased
    encrypted: bool = True
    created_at: datetime = _when(nullable=False)
    purged_at: datetime | None = _when()


class Submission(SQLModel, table=True):
    __tablename__ = "submissions"
    __table_args__ = (
        # `queue --state S` a page at a time: WHERE state = ? AND id > ? ORDER BY id (store/listings.py)
        sa.Index("ix_submissions_state_id", "state", "id"),
        # the outbox's claim: WHERE state IN (queued, deferred) AND next_attempt_at <= now ORDER BY it
        sa.Index("ix_submissions_state_next_attempt_at", "state", "next_attempt_at"),
        # `report mi --from --to`: WHERE created_at >= ? AND created_at < ?
        sa.Index("ix_submissions_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    document_id: int = Field(foreign_key="documents.id")
    report_type: str = Field(max_length=64)
    version: int = 1
    supersedes_id: int | None = Field(default=None, foreign_key="submissions.id")
    state: str = Field(max_length=32, index=True)
    # Generated and committed before the first attempt and reused on every retry, so a crash between the
    # server's 250 and our commit can at worst resend the same Message-ID.
    message_id: str | None = Field(default=None, max_length=255, unique=True)
    attempts: int = 0
    next_attempt_at: datetime | None = _when(index=True)
    lease_until: datetime | None = _when()
    # The daemon instance (daemon_instances.id) holding the lease: a dead owner's claim goes back at once.
    claimed_by: str | None = Field(default=None, max_length=64)
    last_smtp_code: int | None = None
    last_smtp_text: str | None = Field(default=None, max_length=1024)
    sent_reply: str | None = Field(default=None, max_length=1024)  # the server's reply to DATA: evidence
    preflight: dict[str, Any] = _json({})
    # The spool file this came from (name + sha256): a restart after a crash mid-intake finds it here.
    intake_ref: str | None = Field(default=None, max_length=128, unique=True)
    dwp_reference: str | None = Field(default=None, max_length=128)
    rejection_reasons: list[str] = _json([])
    created_at: datetime = _when(nullable=False)
    queued_at: datetime | None = _when()
    sent_at: datetime | None = _when()
    acknowledged_at: datetime | None = _when()
    rejected_at: datetime | None = _when()
    accepted_at: datetime | None = _when()
    failed_at: datetime | None = _when()

    @property
    def token(self) -> str:
        """The submission token carried in subjects, e.g. S-000123; it holds no personal data."""
        return f"S-{self.id:06d}"


class Notice(SQLModel, table=True):
    """Mail we write ourselves (reminders, escalations, alerts), sent through the same durable outbox."""

    __tablename__ = "notices"
    __table_args__ = (
        # the outbox's claim of notices: WHERE state IN (queued, deferred) AND next_attempt_at <= now
        sa.Index("ix_notices_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # reminder | escalation | alert
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    submission_id: int | None = Field(default=None, foreign_key="submissions.id")
    recipients: list[str] = _json([])
    subject: str = Field(max_length=255)
    body: str
    message_id: str = Field(max_length=255, unique=True)
    in_reply_to: str | None = Field(default=None, max_length=255)
    state: str = Field(max_length=32, index=True)
    attempts: int = 0
    next_attempt_at: datetime | None = _when(index=True)
    lease_until: datetime | None = _when()
    # The daemon instance (daemon_instances.id) holding the lease: a dead owner's claim goes back at once.
    claimed_by: str | None = Field(default=None, max_length=64)
    last_smtp_code: int | None = None
    last_smtp_text: str | None = Field(default=None, max_length=1024)
    sent_reply: str | None = Field(default=None, max_length=1024)
    created_at: datetime = _when(nullable=False)
    sent_at: datetime | None = _when()


class InboundMessage(SQLModel, table=True):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        sa.UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_inbound_uid"),
        sa.UniqueConstraint("message_id", "raw_sha256", name="uq_inbound_content"),
        # `inbox [--state S]` a page at a time: WHERE state IN (...) AND id > ? ORDER BY id
        sa.Index("ix_inbound_messages_state_id", "state", "id"),
        # `report mi`'s review counts: WHERE review IS NOT NULL AND received_at in [from, to]
        sa.Index("ix_inbound_messages_received_at", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=255)  # "imap:user@host/INBOX" or "ingest"
    uidvalidity: int | None = Field(default=None, sa_column=Column(sa.BigInteger()))
    uid: int | None = Field(default=None, sa_column=Column(sa.BigInteger()))
    message_id: str = Field(max_length=998, index=True)
    raw_sha256: str = Field(max_length=64)
    raw_size: int = 0
    stored_path: str | None = Field(default=None, max_length=1024)
    state: str = Field(max_length=32, index=True)
    kind: str = Field(max_length=32)
    trusted: bool = False
    trust_reason: str = Field(default="", max_length=512)
    sender: str = Field(default="", max_length=320)
    subject: str = Field(default="", max_length=998)
    in_reply_to: str | None = Field(default=None, max_length=998)
    rules: list[str] = _json([])
    reasons: list[str] = _json([])
    cues: list[str] = Field(
        default_factory=list, sa_column=Column(sa.JSON(), nullable=False, server_default="[]")
    )
    # Why a person must read it (state needs_review); kept after they decide, so MI can count them.
    review: str | None = Field(default=None, max_length=512)
    # The kind a person applied with `inbox assign --as` (rejection, acknowledgement), if any.
    applied_as: str | None = Field(default=None, max_length=32)
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    submission_id: int | None = Field(default=None, foreign_key="submissions.id", index=True)
    match_method: str | None = Field(default=None, max_length=64)
    detail: str = Field(default="", max_length=2048)
    received_at: datetime = _when(nullable=False)
    processed_at: datetime | None = _when()
    assigned_by: str | None = Field(default=None, max_length=128)


class FolderCursor(SQLModel, table=True):
    """How far the watcher has read a folder: correctness comes from here, never from IDLE."""

    __tablename__ = "folder_cursors"

    mailbox: str = Field(primary_key=True, max_length=255)
    uidvalidity: int = Field(sa_column=Column(sa.BigInteger(), nullable=False))
    last_uid: int = Field(default=0, sa_column=Column(sa.BigInteger(), nullable=False))
    updated_at: datetime = _when(nullable=False)


class Clock(SQLModel, table=True):
    __tablename__ = "clocks"
    __table_args__ = (
        # the sweep, `clocks` (pages by due time) and status: WHERE state IN (open) ORDER BY due_at, id
        sa.Index("ix_clocks_state_due_at", "state", "due_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    state: str = Field(max_length=32, index=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    submission_id: int = Field(foreign_key="submissions.id", index=True)
    started_at: datetime = _when(nullable=False)
    due_at: datetime = _when(nullable=False, index=True)
    calendar: str = Field(max_length=64)
    holidays_version: str = Field(max_length=32)
    closed_at: datetime | None = _when()


class Escalation(SQLModel, table=True):
    """One row per (clock, level), written in the same transaction as its notice: never twice."""

    __tablename__ = "escalations"
    __table_args__ = (
        sa.UniqueConstraint("clock_id", "level", name="uq_escalation_level"),
        # status, the digest and metrics: WHERE created_at >= since
        sa.Index("ix_escalations_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    clock_id: int = Field(foreign_key="clocks.id", index=True)
    level: str = Field(max_length=32)
    kind: str = Field(max_length=32)  # reminder | escalation | accept | skipped
    notice_id: int | None = Field(default=None, foreign_key="notices.id")
    recipients: list[str] = _json([])
    created_at: datetime = _when(nullable=False)


class Digest(SQLModel, table=True):
    """One row per working day the daily digest went out, written with its notice: never twice a day."""

    __tablename__ = "digests"

    day: date = Field(primary_key=True)
    notice_id: int = Field(foreign_key="notices.id")
    created_at: datetime = _when(nullable=False)


class DaemonInstance(SQLModel, table=True):
    """One daemon process, by who it is (host, boot, pid, process start) and its heartbeat.

    Written by the daemon every `[daemon] heartbeat_seconds`; `mailroom status` and the metrics read it,
    so they see a daemon on another host too. The id is new at every start and never reused.
    """

    __tablename__ = "daemon_instances"

    id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=255)
    boot_id: str = Field(max_length=64)
    pid: int
    process_started: str = Field(max_length=32)  # the kernel's start time of the pid, in clock ticks
    version: str = Field(max_length=32)
    config: str = Field(max_length=1024)
    started_at: datetime = _when(nullable=False)
    heartbeat_at: datetime = _when(nullable=False, index=True)
    stopped_at: datetime | None = _when()
    smtp_contact_at: datetime | None = _when()
    imap_contact_at: datetime | None = _when()
    outages: list[dict[str, Any]] = _json([])  # [{"what", "channel", "since", "failures", "error"}]


class AuditCheckpoint(SQLModel, table=True):
    """The audit chain's end at a moment (seq and hash), signed: `audit verify --since` starts there."""

    __tablename__ = "audit_checkpoints"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    hash: str = Field(max_length=64)
    at: datetime = _when(nullable=False)
    signature: str = Field(max_length=64)


class Tombstone(SQLModel, table=True):
    """What is left of an erased case: enough to prove the erasure and refuse later sends, nothing more."""

    __tablename__ = "tombstones"

    id: int | None = Field(default=None, primary_key=True)
    case_ref_hash: str = Field(max_length=64, unique=True)
    request_ref: str = Field(max_length=128)
    case_created_at: datetime = _when(nullable=False)
    erased_at: datetime = _when(nullable=False)


class AuditEvent(SQLModel, table=True):
    """Append-only and hash-chained: `mailroom audit verify` finds an edited or deleted row."""

    __tablename__ = "audit_events"
    __table_args__ = (
        # `case show` (a submission's timeline) and the outbox's unconfirmed attempts:
        # WHERE entity = ? AND entity_id = ? ORDER BY seq
        sa.Index("ix_audit_events_entity_entity_id_seq", "entity", "entity_id", "seq"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = _when(nullable=False)
    actor: str = Field(max_length=128)
    entity: str = Field(max_length=32)
    entity_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=64)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str | None = Field(default=None, max_length=32)
    detail: dict[str, Any] = _json({})
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
