"""The inbound pipeline: raw message → parse → classify → trust → match → effects, one transaction each.

IMAP and `mailroom ingest` both come through `Inbox.ingest`, so a saved message behaves exactly as if it
had arrived. Ingest is idempotent: a message seen again (same mailbox UID, same bytes, or the same
Message-ID already applied) changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from mailroom.core.config import Settings
from mailroom.core.matching import BOUNCE_EVIDENCE, Match
from mailroom.core.states import WAITING, InboundState
from mailroom.service.clocks import ClockKeeper, read_open_clocks
from mailroom.service.evidence import Evidence
from mailroom.service.named_rows import NamedRows
from mailroom.service.notice_effects import NoticeEffects
from mailroom.service.reading import Reading, classify_policy, read_message
from mailroom.service.review import ReviewDesk
from mailroom.service.seen_before import SeenBefore
from mailroom.store import audit, queries
from mailroom.store.documents import DocumentStore, StoredFile, temporary_for
from mailroom.store.engine import transaction
from mailroom.store.models import FolderCursor, InboundMessage
from mailroom.store.row_ids import RowIds
from parsers.types import NOTICE_KINDS, Kind

log = logging.getLogger(__name__)
Now = Callable[[], datetime]
ACTOR = "daemon:inbox"
FAILED = "message UID %s could not be processed; quarantined for replay"


class Disposition(StrEnum):
    """What the mailbox edge should do with the message afterwards."""

    PROCESSED = "processed"
    QUARANTINE = "quarantine"
    LEAVE = "leave"  # people's mail and anything not for us stays in the inbox for people to read


@dataclass(frozen=True)
class Arrival:
    """A message as the mailbox handed it over: its bytes and where it was (None for `mailroom ingest`)."""

    raw: bytes
    uidvalidity: int | None = None
    uid: int | None = None
    received_at: datetime | None = None


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
        self.evidence = Evidence(settings, nino_key)
        self.policy = classify_policy(settings)

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
        arrival = Arrival(raw, uidvalidity, uid, received_at)
        with transaction(self.engine) as session:
            if uid is not None and uidvalidity is not None:
                # Same transaction as the effects: after a crash the cursor never runs ahead of the work.
                _advance_cursor(session, mailbox, uidvalidity, uid, now=self.now())
            result, line = self._ingest_in(session, arrival, mailbox, stored, reading)
        if line:
            log.info("%s", line)
        return result

    def ingest_group(
        self,
        arrivals: Sequence[Arrival],
        stored: Sequence[StoredFile],
        *,
        mailbox: str,
        readings: Sequence[Reading] | None = None,
    ) -> list[tuple[Disposition, bool]]:
        """A fetched group in one transaction, a SAVEPOINT per message: a message that raises rolls back
        only its own work (its audit events too: `audit.savepoint`) and is quarantined for replay, and the
        rest commit together with the folder's cursor. Returns (disposition, new) per message.
        `readings`: `read` of each message, when the caller has them (a catch-up's reading worker)."""
        outcomes: list[tuple[Disposition, bool]] = []
        lines: list[str] = []
        # Read first (a message that cannot be read is read again below, where its error quarantines it),
        # so the group's duplicates are looked up with two queries, not two a message.
        known = list(readings) if readings is not None else [self._read_or_none(a.raw) for a in arrivals]
        with transaction(self.engine) as session:
            seen = self._seen_before(session, mailbox, arrivals, known)
            named = NamedRows.for_readings(session, known, self.evidence.names)
            audit.hold_the_trail(session)  # then the clocks' rows: the order other writers take them in
            read_open_clocks(session, named.submission_ids())
            ids = RowIds(session, InboundMessage, len(arrivals))  # rows inserted once, in their final state
            for arrival, raw_file, reading in zip(arrivals, stored, known, strict=True):
                taken = ids.position
                try:
                    with audit.savepoint(session):
                        result, line = self._ingest_in(
                            session, arrival, mailbox, raw_file, reading, seen, named, ids
                        )
                except Exception as exc:  # one bad message must not stop the mailbox
                    log.exception(FAILED, arrival.uid)
                    ids.rewind(taken)  # the rolled-back row's id is the quarantine row's
                    with audit.savepoint(session):
                        self._quarantine_in(session, arrival, mailbox, exc, raw_file, ids)
                    outcomes.append((Disposition.QUARANTINE, True))
                    seen = None  # its quarantine row is new here: the rest of the group asks the database
                    continue
                if seen is not None and reading is not None:
                    seen.done(arrival.uidvalidity, arrival.uid, reading.message_id)
                outcomes.append((result.disposition, not result.duplicate))
                lines.append(line)
            last = [a for a in arrivals if a.uid is not None and a.uidvalidity is not None]
            if last:
                top = max(last, key=lambda a: a.uid or 0)
                assert top.uid is not None and top.uidvalidity is not None
                _advance_cursor(session, mailbox, top.uidvalidity, top.uid, now=self.now())
        for line in filter(None, lines):
            log.info("%s", line)
        return outcomes

    def _read_or_none(self, raw: bytes) -> Reading | None:
        try:
            return self.read(raw)
        except Exception:  # read again in the message's own savepoint, where the error quarantines it
            return None

    @staticmethod
    def _seen_before(
        session: Session, mailbox: str, arrivals: Sequence[Arrival], readings: Sequence[Reading | None]
    ) -> SeenBefore | None:
        """Two queries for the group's duplicates, when every message has its place and its reading."""
        uids = [a.uid for a in arrivals if a.uidvalidity is not None and a.uid is not None]
        ids = [r.message_id for r in readings if r is not None]
        if len(arrivals) < 2 or len(uids) < len(arrivals) or len(ids) < len(arrivals):
            return None
        return SeenBefore.load(session, mailbox, uids, ids)

    def _ingest_in(
        self,
        session: Session,
        arrival: Arrival,
        mailbox: str,
        stored: StoredFile | None,
        reading: Reading | None,
        seen: SeenBefore | None = None,
        named: NamedRows | None = None,
        ids: RowIds | None = None,
    ) -> tuple[IngestResult, str]:
        """One message in the caller's transaction; the result and the INFO line to log once committed."""
        raw, uidvalidity, uid = arrival.raw, arrival.uidvalidity, arrival.uid
        reading = reading or self.read(raw)
        received = arrival.received_at or self.now()
        duplicate = self._duplicate(
            session, reading, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, seen=seen
        )
        if duplicate is not None:
            if stored is not None:
                self.documents.delete(stored.path)
            return duplicate, ""
        stored = self._raw_file(raw, stored)
        row = InboundMessage(
            id=ids.take() if ids else None,
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
        disposition = self._decide(session, row, reading, received, named)
        result = IngestResult(row.id, row.state, row.kind, disposition, detail=row.detail)
        trust = "trusted" if row.trusted else "untrusted"
        return result, f"message {result.inbound_id}: {result.kind}, {trust} -> {result.state}"

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

    def store_raw(self, raws: Sequence[bytes], *, journal: str | None = None) -> list[StoredFile]:
        """Encrypt and write several raw messages with one gpg run, ahead of their ingest; with `journal`,
        their names are journaled first (see `reclaim_raw`). Touches no database."""
        return self.documents.put_many(raws, kind="inbound", journal=journal)

    def reclaim_raw(self, journal: str) -> int:
        """Delete the journal's files that no committed row names (their group rolled back, or was cut off
        by a crash, perhaps before its renames), then close the journal; returns how many were deleted.
        Call it only while no group using this journal is in flight."""
        paths = self.documents.journaled(journal)
        named: set[str | None] = set()
        if paths:
            with transaction(self.engine) as session:
                wanted = [str(path) for path in paths]
                query = select(InboundMessage.stored_path).where(col(InboundMessage.stored_path).in_(wanted))
                named = set(session.exec(query).all())
        unnamed = [path for path in paths if str(path) not in named]
        for path in unnamed:
            self.documents.delete(path)
            self.documents.delete(temporary_for(path))
        self.documents.close_journal(journal)
        return len(unnamed)

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
        with transaction(self.engine) as session:
            if uid is not None and uidvalidity is not None:
                _advance_cursor(session, mailbox, uidvalidity, uid, now=self.now())
            return self._quarantine_in(session, Arrival(raw, uidvalidity, uid), mailbox, error, stored)

    def _quarantine_in(
        self,
        session: Session,
        arrival: Arrival,
        mailbox: str,
        error: BaseException,
        stored: StoredFile | None,
        ids: RowIds | None = None,
    ) -> int | None:
        raw = arrival.raw
        sha = hashlib.sha256(raw).hexdigest()
        same = queries.inbound_by_message_id(session, f"<{sha}@failed>")
        failed_before = next((row for row in same if row.raw_sha256 == sha), None)
        if failed_before is not None:
            # The same bytes failed before (a redelivery, or a copy earlier in this group): that row is the
            # one a person replays. A second row could not be written (Message-ID and sha256 are unique),
            # and raising here would fail the whole group again on every catch-up.
            if stored is not None:
                self.documents.delete(stored.path)
            return failed_before.id
        stored = self._raw_file(raw, stored)
        row = InboundMessage(
            id=ids.take() if ids else None,
            mailbox=mailbox,
            uidvalidity=arrival.uidvalidity,
            uid=arrival.uid,
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
        self,
        session: Session,
        reading: Reading,
        *,
        mailbox: str,
        uidvalidity: int | None,
        uid: int | None,
        seen: SeenBefore | None = None,
    ) -> IngestResult | None:
        """The result of a message ingested before (at this UID, or the same notice by Message-ID)."""
        same: Sequence[InboundMessage]
        if seen is not None and seen.answers(uidvalidity, uid, reading.message_id):
            assert uid is not None and uidvalidity is not None  # SeenBefore is only made for such groups
            at_uid, same = seen.at(uidvalidity, uid), seen.with_message_id(reading.message_id)
        else:
            at_uid = queries.inbound_at_uid(session, mailbox, uidvalidity, uid) if uid is not None else None
            same = queries.inbound_by_message_id(session, reading.message_id[:998])
        return self._as_duplicate(reading, at_uid, same)

    @staticmethod
    def _as_duplicate(
        reading: Reading, at_uid: InboundMessage | None, same: Sequence[InboundMessage]
    ) -> IngestResult | None:
        if at_uid is not None:
            return IngestResult(
                at_uid.id,
                at_uid.state,
                at_uid.kind,
                Disposition.LEAVE,
                duplicate=True,
                detail="seen before at this UID",
            )
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
        self,
        session: Session,
        row: InboundMessage,
        reading: Reading,
        received: datetime,
        named: NamedRows | None,
    ) -> Disposition:
        c = reading.classification
        if reading.parsed is None:
            self._to(session, row, InboundState.QUARANTINED, "quarantined", reading.problem or "")
            return Disposition.QUARANTINE
        match, loaded = self.evidence.match(session, reading.parsed, c, received=received, named=named)
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
        if c.kind == Kind.BOUNCE and not match.matched and (match.refers or self.evidence.for_dwp_inbox(c)):
            # A report may not have reached DWP: whoever sent the bounce, a person must know which.
            self.desk.flag(session, row, _unlinked_bounce(match), trace)
            return Disposition.QUARANTINE
        # A bounce only ever asks for human attention, so it may act on evidence of our own sending alone;
        # an acknowledgement or rejection must come from a trusted, authenticated DWP sender.
        acts_on_evidence = c.kind == Kind.BOUNCE and match.method in BOUNCE_EVIDENCE
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
        sub = loaded.get(match.submission_id) or queries.get_submission(session, match.submission_id)
        self.effects.apply(session, row, sub, c, at=received, actor=ACTOR)
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


def _unlinked_bounce(match: Match) -> str:
    """Why a bounce waits for a person, in our words only (it goes into the team's alert)."""
    if match.refers and match.problem:
        return f"a delivery report about one of our cases, but {match.problem}"
    return "a delivery report for the DWP inbox that names no single report of ours"


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
