"""Admin use cases: cases, submissions and the queue. Each public method is one transaction.

This is where the store, the pure core and the document store meet; the CLI and the daemon call these
methods and never touch the store directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailroom.core.config import PreflightSettings, Settings
from mailroom.core.deadlines import ClockState
from mailroom.core.errors import ConfigError, Conflict, DocumentUnwritable, InputError, NotFound
from mailroom.core.states import SUBMISSION_MOVES, SubmissionState
from mailroom.service import views
from mailroom.service.cases import CaseDesk, NewCase
from mailroom.service.clocks import close_clocks
from mailroom.service.notices import new_message_id
from mailroom.service.reporting import management_information
from mailroom.store import audit, queries
from mailroom.store.documents import DocumentStore, StoredFile
from mailroom.store.engine import transaction
from mailroom.store.listings import Page
from mailroom.store.models import Case, Document, Submission
from mailroom.store.readonly import ReadOnly

if TYPE_CHECKING:  # pdfplumber (behind parsers.preflight) costs ~17 MB: loaded when a PDF is first read
    from parsers.preflight import PreflightPolicy, PreflightReport

Now = Callable[[], datetime]
PDF_MAGIC = b"%PDF-"
# A resubmission must point at a report DWP has seen or that could not be sent.
SUPERSEDABLE = frozenset(
    {
        SubmissionState.REJECTED,
        SubmissionState.FAILED,
        SubmissionState.SENT,
        SubmissionState.ACKNOWLEDGED,
        SubmissionState.ACCEPTED,
    }
)


class Mailroom(CaseDesk):
    """The application's use cases, built once by the CLI or the daemon with real adapters."""

    def __init__(self, settings: Settings, engine: Engine, documents: DocumentStore, now: Now) -> None:
        self.settings = settings
        self.engine = engine
        self.documents = documents
        self.now = now
        self._case_ref = re.compile(settings.matching.case_ref_pattern)
        self._hmac_key: bytes | None = None
        self._preflight_policy: PreflightPolicy | None = None

    # -- cases -----------------------------------------------------------------------------------------

    # -- submissions ---------------------------------------------------------------------------------

    def submit(
        self,
        pdf: Path,
        *,
        case_ref: str,
        report_type: str,
        actor: str,
        supersedes: int | None = None,
        intake_ref: str | None = None,
    ) -> Submission:
        """Check, store (encrypted) and queue a report; nothing is written if the input is wrong.

        A report that fails a blocking preflight check is kept as `preflight_failed` with its findings, so
        people can see why; `queue hold` then `queue release` sends it anyway, on the record.
        """
        return self.submit_bytes(
            self._read_pdf(pdf),
            case_ref=case_ref,
            report_type=report_type,
            actor=actor,
            supersedes=supersedes,
            intake_ref=intake_ref,
        )

    def submit_bytes(
        self,
        data: bytes,
        *,
        case_ref: str,
        report_type: str,
        actor: str,
        supersedes: int | None = None,
        intake_ref: str | None = None,
    ) -> Submission:
        if self.settings.report_type(report_type) is None:
            known = ", ".join(t.code for t in self.settings.report_types)
            raise InputError(f"unknown report type {report_type!r} (known: {known})")
        with transaction(self.engine) as session:
            queries.refuse_if_erased(session, case_ref)
            case = queries.require_case(session, case_ref)
            self._check_sendable_case(case)
            if supersedes is not None:
                self._check_supersedes(session, case, supersedes)
            if intake_ref is not None and (done := queries.submission_by_intake_ref(session, intake_ref)):
                return done
            font_exception = case.font_exception
        # Outside the transaction: reading a long PDF must not hold the database's write lock.
        from parsers.preflight import preflight

        report = preflight(
            data,
            self.preflight_policy,
            case_ref=case.case_ref,
            report_type=report_type,
            font_exception=font_exception,
        )
        with transaction(self.engine) as session:
            case = queries.require_case(session, case_ref)
            assert case.id is not None
            stored = self._store_report(data)
            document = Document(
                case_id=case.id,
                sha256=stored.sha256,
                size=stored.size,
                pages=report.pages,
                stored_path=str(stored.path),
                encrypted=self.documents.encrypted,
                created_at=self.now(),
            )
            session.add(document)
            session.flush()
            assert document.id is not None
            submission = Submission(
                case_id=case.id,
                document_id=document.id,
                report_type=report_type,
                version=queries.latest_version(session, case.id, report_type) + 1,
                supersedes_id=supersedes,
                state=SubmissionState.RECEIVED,
                preflight=report.to_dict(),
                intake_ref=intake_ref,
                created_at=self.now(),
            )
            queries.add_audited(
                session,
                submission,
                entity="submission",
                action="stored",
                now=self.now(),
                actor=actor,
                to_state=SubmissionState.RECEIVED,
                detail={"sha256": stored.sha256, "size": stored.size, "encrypted": self.documents.encrypted},
            )
            if report.passed:
                notes = [f"{f.check}: {f.outcome}" for f in report.findings if f.outcome != "pass"]
                audit.record(
                    session,
                    at=self.now(),
                    actor=actor,
                    entity="submission",
                    entity_id=submission.id,
                    action="preflight-passed",
                    detail={"pages": report.pages, "notes": notes},
                )
                self._queue(session, submission, case, actor=actor)
            else:
                failed = [f"{f.check}: {f.detail}" for f in report.blocking_failures]
                queries.move_submission(
                    session,
                    submission,
                    SubmissionState.PREFLIGHT_FAILED,
                    now=self.now(),
                    actor=actor,
                    action="preflight-failed",
                    detail={"blocking": failed},
                )
            return submission

    def _store_report(self, data: bytes) -> StoredFile:
        """The encrypted file, or DocumentUnwritable: a full or read-only documents folder is a fault of
        the machine, said in one line (the transaction around this rolls back; no partial file is left)."""
        try:
            return self.documents.put(data, kind="reports")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DocumentUnwritable(
                f"cannot store the report in the documents folder {self.documents.root}: {reason}"
            ) from None

    def preflight(self, pdf: Path, *, case_ref: str | None, report_type: str) -> PreflightReport:
        """`mailroom preflight`: the checks `submit` runs, with no change to anything."""
        data = self._read_pdf(pdf)
        font_exception = False
        if case_ref:
            with transaction(self.engine) as session:
                case = queries.require_case(session, case_ref)
                font_exception, case_ref = case.font_exception, case.case_ref
        from parsers.preflight import preflight

        return preflight(
            data,
            self.preflight_policy,
            case_ref=case_ref or "",
            report_type=report_type,
            font_exception=font_exception,
        )

    @property
    def preflight_policy(self) -> PreflightPolicy:
        if self._preflight_policy is None:
            self._preflight_policy = preflight_policy(self.settings)
        return self._preflight_policy

    def nino_key(self) -> bytes | None:
        """The NI-number HMAC key, or None when none is configured (matching by NI number is then off)."""
        if self.settings.matching.nino_hmac_key_file is None:
            return None
        if self._hmac_key is None:
            self._nino_digest_key()
        return self._hmac_key

    def _read_pdf(self, pdf: Path) -> bytes:
        try:
            size = pdf.stat().st_size
            if size > self.settings.intake.max_bytes:
                raise InputError(
                    f"{pdf}: {size} bytes is over [intake] max_bytes ({self.settings.intake.max_bytes})"
                )
            data = pdf.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{pdf}: file not found") from None
        except IsADirectoryError:
            raise InputError(f"{pdf}: is a folder, not a PDF file") from None
        except OSError as exc:
            raise InputError(f"{pdf}: cannot read: {exc.strerror}") from None
        if not data.lstrip()[:1024].startswith(PDF_MAGIC):
            raise InputError(f"{pdf}: not a PDF file")
        return data

    def _check_sendable_case(self, case: Case) -> None:
        if case.erased_at is not None:
            raise Conflict(f"case {case.case_ref} was erased; nothing more can be sent for it")

    def _check_supersedes(self, session: Session, case: Case, supersedes: int) -> None:
        old = queries.get_submission(session, supersedes)
        if old.case_id != case.id:
            raise InputError(f"submission {supersedes} belongs to another case")
        if old.state not in SUPERSEDABLE:
            raise Conflict(
                f"submission {supersedes} is {old.state}; "
                "only a sent, rejected or failed one can be superseded"
            )

    def _queue(self, session: Session, submission: Submission, case: Case, *, actor: str) -> None:
        assert submission.id is not None
        if case.restricted:
            # Restricted cases (MAPPA, keeping customer interactions safe) never go out on their own.
            queries.move_submission(
                session,
                submission,
                SubmissionState.HELD,
                now=self.now(),
                actor=actor,
                action="held-restricted",
            )
            return
        submission.message_id = self._message_id(submission)
        submission.queued_at = self.now()
        submission.next_attempt_at = self.now()
        queries.move_submission(
            session,
            submission,
            SubmissionState.QUEUED,
            now=self.now(),
            actor=actor,
            action="queued",
            detail={"message_id": submission.message_id},
        )

    def _message_id(self, submission: Submission) -> str:
        return new_message_id(self.settings, label=submission.token, now=self.now())

    def queue(self, *, state: str | None = None, after: int | None = None, limit: int = 50) -> Page[Any]:
        """`mailroom queue`: a page of submissions by id, and how many follow it."""
        with ReadOnly.of_engine(self.engine) as reader:
            return views.queue_page(reader, state=state, after=after, limit=limit)

    def escalations(self, *, after: int | None = None, limit: int = 50) -> Page[Any]:
        """Reminders and escalations fired, newest first, with the state of each notice: one page."""
        with ReadOnly.of_engine(self.engine) as reader:
            return views.escalations_page(reader, after=after, limit=limit)

    def management_information(self, start: date | None, end: date | None) -> dict[str, Any]:
        """`report mi`: submissions created in [start, end] (whole days, UTC), summarised."""
        return management_information(self.engine, self.settings.rejection_reasons, start, end)

    # -- admin actions on the queue ------------------------------------------------------------------

    def hold(self, submission_id: int, *, actor: str) -> Submission:
        """Stop a submission going out until it is released."""
        return self._admin_move(submission_id, SubmissionState.HELD, actor=actor, action="held")

    def release(self, submission_id: int, *, actor: str) -> Submission:
        """Put a held submission back in the queue (a restricted case's report goes out only this way)."""
        with transaction(self.engine) as session:
            submission = queries.get_submission(session, submission_id)
            self._require_state(submission, {SubmissionState.HELD})
            case = queries.case_by_id(session, submission.case_id)
            self._check_sendable_case(case)
            self._requeue(session, submission, actor=actor, action="released")
            return submission

    def retry(self, submission_id: int, *, actor: str) -> Submission:
        """Send a failed or deferred submission again now, with the same Message-ID."""
        with transaction(self.engine) as session:
            submission = queries.get_submission(session, submission_id)
            self._require_state(submission, {SubmissionState.FAILED, SubmissionState.DEFERRED})
            self._check_sendable_case(queries.case_by_id(session, submission.case_id))
            self._requeue(session, submission, actor=actor, action="retry")
            return submission

    def cancel(self, submission_id: int, *, actor: str) -> Submission:
        """Never send this submission; its running clocks are cancelled too."""
        return self._admin_move(submission_id, SubmissionState.CANCELLED, actor=actor, action="cancelled")

    def _admin_move(
        self, submission_id: int, target: SubmissionState, *, actor: str, action: str
    ) -> Submission:
        with transaction(self.engine) as session:
            submission = queries.get_submission(session, submission_id)
            if submission.state == SubmissionState.SENDING:
                raise Conflict(f"submission {submission_id} is being sent right now; try again in a minute")
            if target not in SUBMISSION_MOVES[SubmissionState(submission.state)]:
                raise Conflict(f"submission {submission_id} is {submission.state}; it cannot be {action}")
            queries.move_submission(session, submission, target, now=self.now(), actor=actor, action=action)
            close_clocks(
                session, submission_id, None, ClockState.CANCELLED, at=self.now(), why=action, actor=actor
            )
            return submission

    def _requeue(self, session: Session, submission: Submission, *, actor: str, action: str) -> None:
        if submission.message_id is None:
            submission.message_id = self._message_id(submission)
        now = self.now()
        submission.next_attempt_at = now
        # A retry by hand starts a fresh queue lifetime; attempts keep counting for the evidence.
        submission.queued_at = now
        queries.move_submission(
            session,
            submission,
            SubmissionState.QUEUED,
            now=now,
            actor=actor,
            action=action,
            detail={"message_id": submission.message_id},
        )

    @staticmethod
    def _require_state(submission: Submission, allowed: set[SubmissionState]) -> None:
        if submission.state not in allowed:
            names = " or ".join(sorted(allowed))
            raise Conflict(f"submission {submission.id} is {submission.state}; this needs it {names}")


__all__ = ["Mailroom", "NewCase", "NotFound"]


def preflight_policy(settings: Settings) -> PreflightPolicy:
    from parsers.preflight import PreflightPolicy

    p = settings.preflight
    keywords = dict(PreflightPolicy().report_type_keywords)
    for report_type in settings.report_types:
        if report_type.code != "other":  # "other" is any report; its label ("Report") names nothing
            keywords.setdefault(report_type.code, (report_type.label.lower(),))
    try:
        return _preflight_policy(settings, p, keywords)
    except ValueError as exc:
        raise ConfigError(settings.source, "[preflight]", str(exc)) from None


def _preflight_policy(
    settings: Settings, p: PreflightSettings, keywords: dict[str, tuple[str, ...]]
) -> PreflightPolicy:
    from parsers.preflight import Check, Outcome, PreflightPolicy

    return PreflightPolicy(
        max_bytes=settings.intake.max_bytes,
        max_pages=p.max_pages,
        case_ref_pattern=settings.matching.case_ref_pattern,
        allowed_fonts=p.allowed_fonts,
        font_aliases=p.font_aliases,
        font_size=p.font_size,
        font_size_tolerance=p.font_size_tolerance,
        font_warn_share=p.font_warn_share,
        font_fail_share=p.font_fail_share,
        signature_missing=Outcome(p.signature_missing),
        report_type_keywords=keywords,
        **({"employment_patterns": p.employment_patterns} if p.employment_patterns else {}),
        **({"signature_patterns": p.signature_patterns} if p.signature_patterns else {}),
        blocking=frozenset(Check(name) for name in p.blocking),
    )
