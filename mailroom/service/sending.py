"""The durable outbox: claim, compose, send, record. The database is the queue.

A row is claimed (`sending`, with a lease) and committed before any network call. Its Message-ID was
stored when it was queued and is reused on every attempt, so a crash between the server's 250 and our
commit can at worst resend the same Message-ID; the lease then expires, the row goes back to the queue,
and the timeline says it was resent after an unconfirmed attempt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from sqlmodel import Session, col, select

from mailroom.core.claims import Claim, ClaimFeed
from mailroom.core.config import Settings
from mailroom.core.errors import DocumentUnreadable
from mailroom.core.retry import RetryPolicy
from mailroom.core.states import SENDABLE, SubmissionState
from mailroom.service.clocks import ClockKeeper
from mailroom.service.outage import OutageLog
from mailroom.service.send_records import ACTOR, SendRecords, StorageUnavailable, load_rows, move_notice
from mailroom.service.send_tally import count_send
from mailroom.store import queries
from mailroom.store.documents import DocumentStore
from mailroom.store.engine import transaction
from mailroom.store.models import Case, Notice, Submission
from outbox.compose import compose_notice, render_report
from outbox.errors import (
    PartialDelivery,
    RelayUnavailable,
    SendError,
    SessionRefused,
)
from outbox.transport import Envelope
from outbox.types import NoticeRequest, ReportRequest, SendReceipt

log = logging.getLogger(__name__)
Now = Callable[[], datetime]
DECRYPT_GROUP = 8  # documents per gpg run; two groups in memory at most, as each holds whole PDFs
CLAIM_CHUNK = 25  # rows claimed per commit, just before the sender needs them
RECORD_GROUP = 10  # sends recorded per commit


class MailSession(Protocol):
    async def send_envelope(self, envelope: Envelope) -> SendReceipt: ...


class Transport(Protocol):
    def session(self) -> AbstractAsyncContextManager[MailSession]: ...
    def envelope(self, message: EmailMessage) -> Envelope: ...
    def envelope_for(
        self, message_id: str, sender: str, recipients: Sequence[str], content: bytes
    ) -> Envelope: ...


@dataclass(frozen=True)
class ReportPlan:
    """A report ready to compose once its stored document is decrypted."""

    request: ReportRequest
    stored_path: Path


Built = Envelope | SendError | DocumentUnreadable  # a message ready for the wire, or why it cannot be sent


@dataclass(frozen=True)
class PassResult:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    released: int = 0  # claimed, then handed back unsent (the daemon is stopping, or the lease ran out)


class GroupCommits:
    """Sends recorded RECORD_GROUP to a commit, in a worker thread while the next messages go out; one
    commit in flight at a time (one writer). Until a group commits, a crash means a resend with the same
    Message-ID, which the contract allows; a commit per message would halve the outbox's rate."""

    def __init__(self, record: Callable[[list[tuple[Claim, SendReceipt]]], None]) -> None:
        self._record = record
        self._pending: list[tuple[Claim, SendReceipt]] = []
        self._in_flight: asyncio.Task[None] | None = None

    async def add(self, claim: Claim, receipt: SendReceipt) -> None:
        self._pending.append((claim, receipt))
        if len(self._pending) >= RECORD_GROUP:
            await self._wait()
            group, self._pending = self._pending, []
            self._in_flight = asyncio.create_task(asyncio.to_thread(self._record, group))

    async def finish(self) -> None:
        """Wait for the commit in flight, then commit what is left."""
        await self._wait()
        if self._pending:
            group, self._pending = self._pending, []
            await asyncio.to_thread(self._record, group)

    async def _wait(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight


class Outbox(SendRecords):
    def __init__(
        self,
        settings: Settings,
        engine: Any,
        documents: DocumentStore,
        transport: Transport,
        now: Now,
        clocks: ClockKeeper,
        *,
        owner: str = "",
    ) -> None:
        self.settings = settings
        # This daemon's instance id, recorded on every claim (daemon_instances.id); "" in tools and tests
        # that claim without a daemon around them.
        self.owner = owner
        self.engine = engine
        self.documents = documents
        self.transport = transport
        self.now = now
        self.clocks = clocks
        o = settings.outbox
        self.retry = RetryPolicy(
            initial=timedelta(minutes=o.retry_initial_minutes),
            maximum=timedelta(minutes=o.retry_max_minutes),
            lifetime=timedelta(days=o.max_lifetime_days),
        )
        self.lease = timedelta(seconds=o.lease_seconds)
        self._relay_outage = OutageLog(
            f"SMTP relay {settings.smtp.host}:{settings.smtp.port}", channel="smtp"
        )
        # One line for a decryption outage (a missing secret key meets every report in the queue).
        self._storage_outage = OutageLog("decryption of stored reports (gpg)", channel="gpg")
        self._refused: SessionRefused | RelayUnavailable | None = None
        self._stopping = False

    # -- the pass ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the message on the wire, then end the pass; what is claimed but unsent goes back at once."""
        self._stopping = True

    async def run_once(self) -> PassResult:
        """Recover expired leases, then send what is due over one connection, up to `batch_size` messages.

        Rows are claimed a chunk at a time as the sender gets to them, and the next group is claimed and
        decrypted in a worker thread while the current one is on the wire, so the connection never waits
        for the database or gpg between chunks.
        """
        if self._stopping:
            return PassResult()
        await asyncio.to_thread(self.recover_leases)
        feed = ClaimFeed(self.claim, chunk=CLAIM_CHUNK, limit=self.settings.outbox.batch_size)
        counts = {"sent": 0, "deferred": 0, "failed": 0, "released": 0}
        commits = GroupCommits(self.record_sent)
        upcoming = self._next_group(feed)
        try:
            async with self.transport.session() as session:
                refused: SessionRefused | RelayUnavailable | None = None
                while group := await upcoming:
                    upcoming = self._next_group(feed)
                    for claim, built in group:
                        if self._stopping:
                            break
                        if self.now() >= claim.lease_until:
                            # Its lease ran out while earlier messages were slow, so another worker may
                            # take it now: it is not attempted, and goes back to the queue with the rest.
                            continue
                        # Handled from here on: if anything below raises, this row may be on the wire
                        # already, so it is left to lease recovery rather than handed back as unsent.
                        feed.handled(claim)
                        if refused is not None:
                            # No session (refused, or the relay is unavailable): the rest of the pass waits
                            # with this one, rather than meeting the same failure and timeout one by one.
                            counts[await asyncio.to_thread(self.record_failure, claim, refused)] += 1
                        else:
                            outcome = await self._send_one(session, claim, built, commits)
                            if outcome == "refused":
                                refused = self._refused
                                feed.close()
                                outcome = "deferred"
                            counts[outcome] += 1
                    if self._stopping:
                        break
        finally:
            feed.close()
            await asyncio.gather(upcoming, return_exceptions=True)  # no worker left claiming behind us
            await commits.finish()
            if feed.outstanding:
                counts["released"] += await asyncio.to_thread(self.release, feed.outstanding)
        return PassResult(**counts)

    def _next_group(self, feed: ClaimFeed) -> asyncio.Task[list[tuple[Claim, Built]]]:
        def take_and_build() -> list[tuple[Claim, Built]]:
            claims = feed.take(DECRYPT_GROUP)
            return list(zip(claims, self.build_group(claims), strict=True)) if claims else []

        return asyncio.create_task(asyncio.to_thread(take_and_build))

    async def _send_one(
        self,
        session: MailSession,
        claim: Claim,
        built: Built,
        commits: GroupCommits,
    ) -> str:
        if isinstance(built, DocumentUnreadable):
            failure = StorageUnavailable(f"cannot decrypt: {built}")
            self._storage_outage.failed(failure)
            return await asyncio.to_thread(self.record_failure, claim, failure)
        if claim.table == "submission" and not isinstance(built, SendError):
            self._storage_outage.recovered()  # its document decrypted
        if isinstance(built, SendError):
            return await asyncio.to_thread(self.record_failure, claim, built)
        try:
            receipt = await self._deliver(session, built)
        except (SessionRefused, RelayUnavailable) as exc:
            self._relay_outage.failed(exc)
            self._refused = exc
            await asyncio.to_thread(self.record_failure, claim, exc)
            return "refused"
        except PartialDelivery as exc:
            return await asyncio.to_thread(self.record_partial, claim, exc)
        except SendError as exc:
            return await asyncio.to_thread(self.record_failure, claim, exc)
        self._relay_outage.recovered()
        await commits.add(claim, receipt)
        return "sent"

    @staticmethod
    async def _deliver(session: MailSession, built: Envelope) -> SendReceipt:
        """One attempt on the wire, counted for the metrics by how it ended."""
        try:
            receipt = await session.send_envelope(built)
        except SendError as exc:
            count_send(exc)
            raise
        count_send(None, code=receipt.code)
        return receipt

    # -- claiming ----------------------------------------------------------------------------------------

    def recover_leases(self) -> int:
        """Rows whose worker died mid-send go back to the queue with their Message-ID: at once when their
        owner is gone (claim_owners), else when their lease runs out."""
        now = self.now()
        recovered = 0
        with transaction(self.engine) as session:
            # One transaction for both: this runs at the top of every outbox pass.
            orphans = self.hand_back_orphans(session, now=now)
            for sub in session.exec(
                select(Submission).where(
                    Submission.state == SubmissionState.SENDING, col(Submission.lease_until) < now
                )
            ).all():
                sub.lease_until = None
                sub.next_attempt_at = now
                queries.move_submission(
                    session,
                    sub,
                    SubmissionState.QUEUED,
                    now=now,
                    actor=ACTOR,
                    action="lease-expired",
                    detail={"note": "resent after an unconfirmed attempt", "message_id": sub.message_id},
                )
                recovered += 1
            for notice in session.exec(
                select(Notice).where(Notice.state == "sending", col(Notice.lease_until) < now)
            ).all():
                notice.lease_until = None
                notice.next_attempt_at = now
                move_notice(session, notice, "queued", now=now, action="lease-expired")
                recovered += 1
        for who, count in orphans.items():
            log.warning(
                "%d message(s) claimed by a daemon that is gone (%s) went back to the queue", count, who
            )
        if recovered:
            log.warning("%d message(s) were resent after an unconfirmed attempt", recovered)
        return orphans.total() + recovered

    def claim(self, limit: int) -> list[Claim]:
        now = self.now()
        lease_until = now + self.lease
        claims: list[Claim] = []
        with transaction(self.engine) as session:
            due_submissions = session.exec(
                select(Submission)
                .where(col(Submission.state).in_(list(SENDABLE)), col(Submission.next_attempt_at) <= now)
                .order_by(col(Submission.next_attempt_at), col(Submission.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            # Their cases in one query: each row checks that its case was not erased.
            case_ids = {sub.case_id for sub in due_submissions}
            found: Sequence[Case] = (
                session.exec(select(Case).where(col(Case.id).in_(case_ids))).all() if case_ids else []
            )
            cases = {case.id: case for case in found}
            for sub in due_submissions:
                claim = self._claim_submission(
                    session, sub, cases[sub.case_id], now=now, lease_until=lease_until
                )
                if claim:
                    claims.append(claim)
            due_notices = session.exec(
                select(Notice)
                .where(col(Notice.state).in_(["queued", "deferred"]), col(Notice.next_attempt_at) <= now)
                .order_by(col(Notice.next_attempt_at), col(Notice.id))
                .limit(max(limit - len(claims), 1))
                .with_for_update(skip_locked=True)
            ).all()
            for notice in due_notices:
                assert notice.id is not None
                notice.attempts += 1
                notice.lease_until = lease_until
                notice.claimed_by = self.owner or None
                move_notice(session, notice, "sending", now=now, action="claimed")
                claims.append(Claim("notice", notice.id, notice.message_id, notice.attempts, lease_until))
        return claims

    def _claim_submission(
        self, session: Session, sub: Submission, case: Case, *, now: datetime, lease_until: datetime
    ) -> Claim | None:
        assert sub.id is not None and sub.message_id is not None
        if case.erased_at is not None:
            queries.move_submission(
                session, sub, SubmissionState.CANCELLED, now=now, actor=ACTOR, action="cancelled-erased"
            )
            return None
        sub.attempts += 1
        sub.lease_until = lease_until
        sub.claimed_by = self.owner or None
        queries.move_submission(
            session,
            sub,
            SubmissionState.SENDING,
            now=now,
            actor=ACTOR,
            action="claimed",
            detail={"attempt": sub.attempts},
        )
        return Claim("submission", sub.id, sub.message_id, sub.attempts, lease_until)

    def release(self, claims: list[Claim]) -> int:
        """Hand claimed rows back to the queue unsent (the daemon is stopping, or a row's lease ran out
        before its turn) instead of leaving them to lease recovery, which would log them as resent after
        an unconfirmed attempt; the attempt did not happen, so it is not counted. A row another worker
        has taken over in the meantime is left to it."""
        now = self.now()
        released = 0
        with transaction(self.engine) as session:
            for claim in claims:
                row = self._claimed_row(session, claim)
                if row is None:
                    continue
                row.attempts -= 1
                row.lease_until = None
                row.next_attempt_at = now
                self._move(session, row, "queued", now=now, action="released", detail={"note": "not sent"})
                released += 1
        if released:
            log.info("%d claimed message(s) went back to the queue unsent", released)
        return released

    # -- composing ---------------------------------------------------------------------------------------

    def build_group(self, claims: list[Claim]) -> list[Built]:
        """Decrypt (one gpg run for the group), compose and serialise, off the event loop.

        Plaintext lives only in these envelopes. The allow-list is checked here, before any connection.
        """
        with transaction(self.engine) as session:  # one short read for the whole group
            loaded = load_rows(session, claims, with_report_details=True)
            plans = [self._plan(session, claim) for claim in claims]
            del loaded
        reports = [plan for plan in plans if isinstance(plan, ReportPlan)]
        plain = iter(self.documents.get_many([r.stored_path for r in reports]))
        built: list[Built] = []
        for plan in plans:
            if isinstance(plan, ReportPlan):
                pdf = next(plain)
                built.append(pdf if isinstance(pdf, DocumentUnreadable) else self._report_envelope(plan, pdf))
            elif isinstance(plan, DocumentUnreadable):
                built.append(plan)
            else:
                built.append(_checked(partial(self.transport.envelope, plan)))
        return built

    def _report_envelope(self, plan: ReportPlan, pdf: bytes) -> Envelope | SendError:
        request = dataclasses.replace(plan.request, pdf=pdf)
        content = render_report(request)
        envelope_for = self.transport.envelope_for
        return _checked(partial(envelope_for, request.message_id, request.from_address, request.to, content))

    def _plan(self, session: Session, claim: Claim) -> EmailMessage | DocumentUnreadable | ReportPlan:
        """A notice composed at once, or a report's request still waiting for its decrypted PDF."""
        if claim.table == "notice":
            notice = session.get(Notice, claim.id)
            assert notice is not None
            return compose_notice(
                NoticeRequest(
                    from_address=self.settings.provider.from_address,
                    to=tuple(notice.recipients),
                    subject=notice.subject,
                    body=notice.body,
                    message_id=notice.message_id,
                    date=self.now(),
                    in_reply_to=notice.in_reply_to,
                    references=(notice.in_reply_to,) if notice.in_reply_to else (),
                )
            )
        sub = queries.get_submission(session, claim.id)
        document = queries.document_for(session, sub)
        if document.stored_path is None:
            return DocumentUnreadable("the document was purged or erased")
        case = queries.case_by_id(session, sub.case_id)
        report_type = self.settings.report_type(sub.report_type)
        request = ReportRequest(
            from_address=self.settings.provider.from_address,
            to=(self.settings.dwp.inbox,),
            case_ref=case.case_ref,
            report_type_label=report_type.label if report_type else sub.report_type,
            submission_token=sub.token,
            message_id=claim.message_id,
            date=self.now(),
            pdf=b"",
            pdf_filename=f"{case.case_ref}-{sub.report_type}-v{sub.version}.pdf",
            cover_text=self.clocks.wording.cover(case, sub),
            reply_to=None,
        )
        return ReportPlan(request, Path(document.stored_path))

    # -- recording outcomes --------------------------------------------------------------------------------


def _checked(make: Callable[[], Envelope]) -> Envelope | SendError:
    try:
        return make()
    except SendError as exc:  # a recipient not on the allow-list: nothing was sent
        return exc
