"""The inbound pipeline: raw message → parse → classify → trust → match → effects, one transaction each.

IMAP and `mailroom ingest` both come through `Inbox.ingest`, so a saved message behaves exactly as if it
had arrived. Ingest is idempotent: a message seen again (same mailbox UID, same bytes, or the same
Message-ID already applied) changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from mailroom.core.config import Settings
from mailroom.core.identity import nino_hmac
from mailroom.core.matching import Candidate, Match, Method, OpenSubmission, decide, needs_open_submissions
from mailroom.core.states import WAITING, InboundState
from mailroom.service.clocks import ClockKeeper
from mailroom.service.notice_effects import NoticeEffects
from mailroom.service.reading import Reading, classify_policy, read_message
from mailroom.service.review import ReviewDesk
from mailroom.store import queries
from mailroom.store.documents import DocumentStore, StoredFile
from mailroom.store.engine import transaction
from mailroom.store.models import FolderCursor, InboundMessage, Submission
from parsers.nino import find_ninos
from parsers.refs import find_case_refs, find_message_ids, find_submission_tokens, searchable_text
from parsers.types import NOTICE_KINDS, Classification, Kind, ParsedMessage

log = logging.getLogger(__name__)
Now = Callable[[], datetime]
ACTOR = "daemon:inbox"


class Disposition(StrEnum):
    """What the mailbox edge should do with the message afterwards."""

    PROCESSED = "processed"
    QUARANTINE = "quarantine"
    LEAVE = "leave"  # people's mail and anything not for us stays in the inbox for people to read


@dataclass(frozen=True)
class IngestResult:
    inbound_id: int | None
    state: str
    kind: str
    disposition: Disposition
    duplicate: bool = False
    detail: str = ""


class Inbox:
    def __init__(
        self,
        settings: Settings,
        engine: Any,
        documents: DocumentStore,
        now: Now,
        clocks: ClockKeeper,
        nino_key: Callable[[], bytes | None],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.documents = documents
        self.now = now
        self.clocks = clocks
        self.effects = NoticeEffects(settings, clocks, now)
        self.desk = ReviewDesk(settings, engine, now, self.effects, clocks.wording)
        self._nino_key = nino_key
        self.policy = classify_policy(settings)
        self._report_type_words = {
            t.code: re.compile(re.escape(t.label), re.IGNORECASE)
            for t in settings.report_types
            if t.code != "other"
        }

    # -- reading (pure apart from the settings) -------------------------------------------------------------

    def read(self, raw: bytes) -> Reading:
        return read_message(raw, self.settings, self.policy)

    # -- ingest ------------------------------------------------------------------------------------------

    def ingest(
        self,
        raw: bytes,
        *,
        mailbox: str,
        uidvalidity: int | None = None,
        uid: int | None = None,
        received_at: datetime | None = None,
        stored: StoredFile | None = None,
        reading: Reading | None = None,
    ) -> IngestResult:
        """Read, store, match and apply one message, in one transaction. `stored` is the raw message
        already encrypted and written (`store_raw`, a batch at a time); it is deleted if not needed.
        `reading` is `read(raw)` when the caller has already made it."""
        reading = reading or self.read(raw)
        received = received_at or self.now()
        with transaction(self.engine) as session:
            if uid is not None and uidvalidity is not None:
                # Same transaction as the effects: after a crash the cursor never runs ahead of the work.
                _advance_cursor(session, mailbox, uidvalidity, uid, now=self.now())
            duplicate = self._duplicate(session, reading, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid)
            if duplicate is not None:
                if stored is not None:
                    self.documents.delete(stored.path)
                return duplicate
            stored = self._raw_file(raw, stored)
            row = InboundMessage(
                mailbox=mailbox,
                uidvalidity=uidvalidity,
                uid=uid,
                message_id=reading.message_id[:998],
                raw_sha256=reading.sha256,
                raw_size=len(raw),
                stored_path=str(stored.path),
                state=InboundState.NEW,
                kind=reading.classification.kind,
                trusted=reading.trust.trusted,
                trust_reason=reading.trust.reason[:512],
                sender=(reading.parsed.sender if reading.parsed else "")[:320],
                subject=(reading.parsed.subject if reading.parsed else "")[:998],
                in_reply_to=reading.parsed.in_reply_to[:998]
                if reading.parsed and reading.parsed.in_reply_to
                else None,
                rules=list(reading.classification.rules),
                reasons=list(reading.classification.reasons),
                cues=list(reading.classification.cues),
                detail=(reading.problem or reading.classification.detail)[:2048],
                received_at=received,
                processed_at=self.now(),
            )
            queries.add_audited(
                session,
                row,
                entity="message",
                action="received",
                now=self.now(),
                actor=ACTOR,
                to_state=InboundState.NEW,
                detail={"kind": row.kind, "trusted": row.trusted, "rules": row.rules},
            )
            disposition = self._decide(session, row, reading, received)
            result = IngestResult(row.id, row.state, row.kind, disposition, detail=row.detail)
        log.info(
            "message %s: %s, %s -> %s",
            result.inbound_id,
            result.kind,
            "trusted" if row.trusted else "untrusted",
            result.state,
        )
        return result

    def filing(self, mailbox: str, uidvalidity: int, uids: Sequence[int]) -> dict[int, Disposition]:
        """Where messages already ingested from `mailbox` belong, by UID (for a move that was cut off)."""
        found: dict[int, Disposition] = {}
        with transaction(self.engine) as session:
            for start in range(0, len(uids), 500):
                rows = session.exec(
                    select(InboundMessage).where(
                        InboundMessage.mailbox == mailbox,
                        InboundMessage.uidvalidity == uidvalidity,
                        col(InboundMessage.uid).in_(list(uids[start : start + 500])),
                    )
                ).all()
                found.update({row.uid: _disposition_for(row) for row in rows if row.uid is not None})
        return found

    def store_raw(self, raws: Sequence[bytes]) -> list[StoredFile]:
        """Encrypt and write several raw messages with one gpg run, ahead of their ingest."""
        return self.documents.put_many(raws, kind="inbound")

    def _raw_file(self, raw: bytes, stored: StoredFile | None) -> StoredFile:
        """The raw message's encrypted file: the one `store_raw` wrote if still there, else a new one."""
        if stored is not None and stored.path.exists():
            return stored
        return self.documents.put(raw, kind="inbound")

    def quarantine_failure(
        self,
        raw: bytes,
        *,
        mailbox: str,
        uidvalidity: int | None,
        uid: int | None,
        error: BaseException,
        stored: StoredFile | None = None,
    ) -> int | None:
        """A message whose processing raised: keep it, quarantined with the error, for a person to replay."""
        sha = hashlib.sha256(raw).hexdigest()
        with transaction(self.engine) as session:
            if uid is not None and uidvalidity is not None:
                _advance_cursor(session, mailbox, uidvalidity, uid, now=self.now())
            stored = self._raw_file(raw, stored)
            row = InboundMessage(
                mailbox=mailbox,
                uidvalidity=uidvalidity,
                uid=uid,
                message_id=f"<{sha}@failed>",
                raw_sha256=sha,
                raw_size=len(raw),
                stored_path=str(stored.path),
                state=InboundState.QUARANTINED,
                kind=Kind.OTHER,
                detail=f"processing failed: {type(error).__name__}: {error}"[:2048],
                received_at=self.now(),
                processed_at=self.now(),
            )
            queries.add_audited(
                session,
                row,
                entity="message",
                action="processing-failed",
                now=self.now(),
                actor=ACTOR,
                to_state=InboundState.QUARANTINED,
                detail={"error": type(error).__name__},
            )
            return row.id

    def _duplicate(
        self, session: Session, reading: Reading, *, mailbox: str, uidvalidity: int | None, uid: int | None
    ) -> IngestResult | None:
        if uid is not None:
            seen = session.exec(
                select(InboundMessage).where(
                    InboundMessage.mailbox == mailbox,
                    InboundMessage.uidvalidity == uidvalidity,
                    InboundMessage.uid == uid,
                )
            ).first()
            if seen:
                return IngestResult(
                    seen.id,
                    seen.state,
                    seen.kind,
                    Disposition.LEAVE,
                    duplicate=True,
                    detail="seen before at this UID",
                )
        same = session.exec(
            select(InboundMessage).where(InboundMessage.message_id == reading.message_id[:998])
        ).all()
        for seen in same:
            # The same bytes, or (for a real Message-ID) the same notice delivered again with new trace
            # headers: either way its effects were applied once already.
            if seen.raw_sha256 == reading.sha256 or (reading.parsed and reading.parsed.message_id):
                return IngestResult(
                    seen.id,
                    seen.state,
                    seen.kind,
                    _disposition_for(seen),
                    duplicate=True,
                    detail=f"a copy of message {seen.id}",
                )
        return None

    def _decide(
        self, session: Session, row: InboundMessage, reading: Reading, received: datetime
    ) -> Disposition:
        c = reading.classification
        if reading.parsed is None:
            self._to(session, row, InboundState.QUARANTINED, "quarantined", reading.problem or "")
            return Disposition.QUARANTINE
        match = self._match(session, reading.parsed, c)
        row.case_id, row.submission_id = match.case_id, match.submission_id
        row.match_method = match.method.value if match.method else None
        trace = "; ".join([*match.trace, *([f"problem: {match.problem}"] if match.problem else [])])
        trusted = reading.trust.trusted
        if c.kind not in NOTICE_KINDS:
            if c.review is not None and trusted and match.refers:
                # Trusted DWP mail about our case that no rule read with certainty: a person decides.
                self.desk.flag(session, row, c.review, trace)
                return Disposition.QUARANTINE
            # A person's out-of-office, a bulletin, mail about nothing of ours: recorded, left for people.
            self._to(session, row, InboundState.IGNORED, "ignored", trace)
            return Disposition.LEAVE
        # A failed bounce only ever asks for human attention, so it may act on our own Message-ID alone;
        # an acknowledgement or rejection must come from a trusted, authenticated DWP sender.
        acts_on_evidence = c.kind == Kind.BOUNCE and match.method == Method.DSN_ORIGINAL
        if not (trusted or acts_on_evidence):
            self._to(
                session, row, InboundState.QUARANTINED, "quarantined", f"untrusted: {reading.trust.reason}"
            )
            return Disposition.QUARANTINE
        if not match.matched:
            if c.kind == Kind.REJECTION and match.refers:
                # A rejection about our case whose submission is unclear: its clock must not wait unseen.
                self.desk.flag(session, row, f"a rejection, but {match.problem}", trace)
            else:
                self._to(session, row, InboundState.UNMATCHED, "unmatched", trace)
            return Disposition.QUARANTINE
        self._to(session, row, InboundState.MATCHED, "matched", trace)
        assert match.submission_id is not None
        self.effects.apply(
            session, row, queries.get_submission(session, match.submission_id), c, at=received, actor=ACTOR
        )
        return Disposition.PROCESSED

    def _to(
        self, session: Session, row: InboundMessage, target: InboundState, action: str, detail: str
    ) -> None:
        if detail:
            row.detail = detail[:2048]
        queries.move_inbound(
            session,
            row,
            target,
            now=self.now(),
            actor=ACTOR,
            action=action,
            detail={"method": row.match_method} if row.match_method else None,
        )

    # -- matching ------------------------------------------------------------------------------------------

    def _match(self, session: Session, msg: ParsedMessage, classification: Classification) -> Match:
        candidates: list[Candidate] = []
        threads = [(Method.IN_REPLY_TO, msg.in_reply_to)] if msg.in_reply_to else []
        threads += [(Method.REFERENCES, ref) for ref in msg.references]
        if classification.dsn and classification.dsn.original_message_id:
            threads.append((Method.DSN_ORIGINAL, classification.dsn.original_message_id))
        for method, value in threads:
            for message_id in find_message_ids(value) or (value,):
                sub = queries.submission_by_message_id(session, message_id)
                if sub is not None and sub.id is not None:
                    candidates.append(Candidate(method, sub.case_id, sub.id))
        for token in find_submission_tokens(msg.subject):
            sub = session.get(Submission, int(token.split("-")[1]))
            if sub is not None and sub.id is not None:
                candidates.append(Candidate(Method.SUBJECT_TOKEN, sub.case_id, sub.id))
        text = searchable_text(msg)
        for case in queries.cases_by_refs(
            session, find_case_refs(text, self.settings.matching.case_ref_pattern)
        ):
            assert case.id is not None
            candidates.append(Candidate(Method.CASE_REF, case.id))
        candidates += self._nino_candidates(session, text)
        open_subs: list[OpenSubmission] = []
        if needs_open_submissions(candidates):
            open_subs = self._open_submissions(session, candidates[0].case_id)
        named = [code for code, word in self._report_type_words.items() if word.search(text)]
        return decide(candidates, open_subs, report_types_named=named)

    def _nino_candidates(self, session: Session, text: str) -> list[Candidate]:
        ninos = find_ninos(text)
        key = self._nino_key() if ninos else None
        if not key:
            return []
        result = []
        for nino in ninos:
            for case in queries.cases_by_nino_hmac(session, nino_hmac(key, nino)):
                assert case.id is not None
                result.append(Candidate(Method.NINO, case.id))
        return result

    def _open_submissions(self, session: Session, case_id: int) -> list[OpenSubmission]:
        return [
            OpenSubmission(s.id, s.report_type, int(s.sent_at.timestamp()) if s.sent_at else 0)
            for s in queries.open_submissions(session, case_id)
            if s.id is not None
        ]


def _disposition_for(row: InboundMessage) -> Disposition:
    if row.state in (InboundState.MATCHED, InboundState.ASSIGNED):
        return Disposition.PROCESSED
    if row.state in WAITING:
        return Disposition.QUARANTINE
    return Disposition.LEAVE


def _advance_cursor(session: Session, mailbox: str, uidvalidity: int, uid: int, *, now: datetime) -> None:
    cursor = session.get(FolderCursor, mailbox)
    if cursor is None or cursor.uidvalidity != uidvalidity:
        cursor = cursor or FolderCursor(mailbox=mailbox, uidvalidity=uidvalidity, updated_at=now)
        cursor.uidvalidity, cursor.last_uid = uidvalidity, 0
    cursor.last_uid = max(cursor.last_uid, uid)
    cursor.updated_at = now
    session.add(cursor)


def cursor_for(session: Session, mailbox: str) -> FolderCursor | None:
    return session.get(FolderCursor, mailbox)
