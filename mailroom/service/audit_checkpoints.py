"""Signed audit checkpoints: verify a long chain once, then only what came after.

`write` verifies the whole chain and, only if it is intact, records where it ends (seq and hash) with an
HMAC-SHA256 under `[audit] checkpoint_key_file`. `verify_since` takes the newest checkpoint, checks its
signature and that the event it names still carries the hash it signed, then verifies the events after
it. An edit after the checkpoint breaks the chain; an edit to the checkpoint breaks its signature; an edit
before it changes the named event's hash or the chain that leads to it (found by a full `audit verify`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailroom.core.config import Settings
from mailroom.core.errors import ConfigError, Conflict, InputError
from mailroom.edges.configfile import read_secret
from mailroom.store import audit
from mailroom.store.engine import transaction
from mailroom.store.models import AuditCheckpoint, AuditEvent

MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class Checked:
    checkpoint_seq: int
    checkpoint_at: datetime
    events: int  # verified after the checkpoint
    problems: list[str]


def signature(key: bytes, seq: int, digest: str, at: datetime) -> str:
    message = f"mailroom-audit-checkpoint:{seq}:{digest}:{at.isoformat()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class AuditCheckpoints:
    def __init__(self, settings: Settings, engine: sa.Engine, now: Callable[[], datetime]) -> None:
        self.settings = settings
        self.engine = engine
        self.now = now

    def write(self) -> AuditCheckpoint:
        key = self._key()
        with transaction(self.engine) as session:
            count, problems = audit.verify_stream(session)
            if problems:
                raise Conflict(f"the audit chain is broken ({problems[0]}); no checkpoint is signed over it")
            if count == 0:
                raise InputError("the audit trail is empty; there is nothing to sign yet")
            last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).one()
            at = self.now()
            checkpoint = AuditCheckpoint(
                seq=last.seq, hash=last.hash, at=at, signature=signature(key, last.seq, last.hash, at)
            )
            session.add(checkpoint)
        return checkpoint

    def verify_since(self) -> Checked:
        key = self._key()
        with Session(self.engine) as session:
            latest = session.exec(
                select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
            ).first()
            if latest is None:
                raise InputError("no audit checkpoint yet: run `mailroom audit checkpoint` first")
            expected = signature(key, latest.seq, latest.hash, latest.at)
            if not hmac.compare_digest(expected, latest.signature):
                problem = (
                    f"checkpoint at event {latest.seq}: its signature does not match (edited, or another key)"
                )
                return Checked(latest.seq, latest.at, 0, [problem])
            named = session.get(AuditEvent, latest.seq)
            if named is None or named.hash != latest.hash:
                problem = f"event {latest.seq}: not the event the checkpoint signed (deleted or edited)"
                return Checked(latest.seq, latest.at, 0, [problem])
            count, problems = audit.verify_stream(session, since=latest.seq)
        return Checked(latest.seq, latest.at, count, problems)

    def _key(self) -> bytes:
        if self.settings.audit.checkpoint_key_file is None:
            raise ConfigError(
                self.settings.source, "[audit] checkpoint_key_file", "is required for audit checkpoints"
            )
        key = read_secret(
            self.settings.audit.checkpoint_key_file,
            source=self.settings.source,
            key="[audit] checkpoint_key_file",
        ).encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                self.settings.source,
                "[audit] checkpoint_key_file",
                f"must hold at least {MIN_KEY_BYTES} bytes",
            )
        return key
