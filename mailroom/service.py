"""Admin use cases: cases, submissions and the queue. Each public method is one transaction.

This is where the store, the pure core and the document store meet; the CLI and the daemon call these
methods and never touch the store directly.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailroom import audit, store
from mailroom.clockwork import close_clocks
from mailroom.config import PreflightSettings, Settings, read_secret
from mailroom.db import transaction
from mailroom.deadlines import ClockState
from mailroom.documents import DocumentStore
from mailroom.errors import ConfigError, Conflict, InputError, NotFound
from mailroom.identity import nino_hmac
from mailroom.mi import SubmissionFacts, summarise
from mailroom.models import Case, Clock, Document, Escalation, Notice, Submission
from mailroom.notices import new_message_id
from mailroom.records import refuse_if_erased
from mailroom.states import SUBMISSION_MOVES, SubmissionState
from parsers.errors import InvalidNino

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


@dataclass(frozen=True)
class NewCase:
    case_ref: str
    atw_ref: str | None = None
    prap_id: str | None = None
    nino: str | None = None
    performance_manager: str | None = None
    restricted: bool = False
    font_exception: bool = False


class Mailroom:
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

    def add_case(self, new: NewCase, *, actor: str, force: bool = False) -> Case:
        with transaction(self.engine) as session:
            return self._add_case(session, new, actor=actor, force=force)

    def import_cases(
        self, path: Path, *, actor: str, force: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        """Add every case in a CSV file, or none: a bad row rolls the whole file back."""
        rows = list(_read_case_csv(path))
        with transaction(self.engine) as session:
            for line, new in rows:
                try:
                    self._add_case(session, new, actor=actor, force=force)
                except InputError as exc:
                    raise InputError(f"{path}:{line}: {exc}") from None
                if progress:
                    progress(1)
        return len(rows)

    def _add_case(self, session: Session, new: NewCase, *, actor: str, force: bool) -> Case:
        case_ref = store.normalise_case_ref(new.case_ref)
        if not self._case_ref.fullmatch(case_ref):
            raise InputError(
                f"case reference {case_ref!r} does not match [matching] case_ref_pattern "
                f"{self.settings.matching.case_ref_pattern!r}"
            )
        if store.get_case(session, case_ref) is not None:
            raise Conflict(f"case {case_ref} exists already")
        refuse_if_erased(session, case_ref)
        digest = self._nino_digest(new.nino) if new.nino else None
        if digest and store.cases_by_nino_hmac(session, digest) and not force:
            # Memo 08 §4.62: a customer can be on the programme only once.
            raise Conflict(
                "a case for this NI number exists already (re-referral, guidance §4.62); use --force if "
                "this is a permitted re-referral"
            )
        manager = self._checked_manager(new.performance_manager)
        case = Case(
            case_ref=case_ref,
            atw_ref=_blank_to_none(new.atw_ref),
            prap_id=_blank_to_none(new.prap_id),
            nino_hmac=digest,
            performance_manager=manager,
            restricted=new.restricted,
            font_exception=new.font_exception,
            created_at=self.now(),
        )
        store.add_audited(
            session,
            case,
            entity="case",
            action="case-added",
            now=self.now(),
            actor=actor,
            detail={"forced_rereferral": True} if digest and force else {},
        )
        return case

    def _nino_digest(self, nino: str) -> str:
        key = self._nino_digest_key()
        try:
            return nino_hmac(key, nino)
        except InvalidNino as exc:
            raise InputError(str(exc)) from None

    def _nino_digest_key(self) -> bytes:
        if self._hmac_key is None:
            key = read_secret(
                self.settings.matching.nino_hmac_key_file,
                source=self.settings.source,
                key="[matching] nino_hmac_key_file",
            )
            self._hmac_key = key.encode("utf-8")
        return self._hmac_key

    def _checked_manager(self, address: str | None) -> str | None:
        if not address:
            return None
        if address.lower() not in self.settings.allowed_recipients():
            raise InputError(
                "the performance manager address is not on the outbound allow-list; add it to "
                "[outbox] extra_allowed_recipients first"
            )
        return address.lower()

    def case_view(self, case_ref: str) -> dict[str, Any]:
        """`case show REF --json` (design.md §8), plus each submission's timeline."""
        with transaction(self.engine) as session:
            refuse_if_erased(session, case_ref)
            case = store.require_case(session, case_ref)
            assert case.id is not None
            submissions = store.submissions_for_case(session, case.id)
            view: dict[str, Any] = {
                "case_ref": case.case_ref,
                "restricted": case.restricted,
                "created_at": _iso(case.created_at),
                "submissions": [self._submission_view(session, s, case) for s in submissions],
                "clocks": [
                    {
                        "kind": c.kind,
                        "state": c.state,
                        "started_at": _iso(c.started_at),
                        "due_at": _iso(c.due_at),
                        "submission_id": c.submission_id,
                        "calendar": c.calendar,
                        "holidays_version": c.holidays_version,
                    }
                    for c in store.clocks_for_case(session, case.id)
                ],
                "escalations": [
                    {
                        "level": e.level,
                        "kind": e.kind,
                        "sent_at": _iso(notice.sent_at) if notice else None,
                        "to": e.recipients,
                        "state": notice.state if notice else None,
                    }
                    for e, notice in store.escalations_for_case(session, case.id)
                ],
            }
            if not case.restricted:
                view |= {"atw_ref": case.atw_ref, "prap_id": case.prap_id, "has_nino": bool(case.nino_hmac)}
            if case.erased_at:
                view["erased_at"] = _iso(case.erased_at)
            return view

    def _submission_view(self, session: Session, s: Submission, case: Case) -> dict[str, Any]:
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
            "sent_at": _iso(s.sent_at),
            "sent_reply": s.sent_reply,
            "acknowledged_at": _iso(s.acknowledged_at),
            "dwp_reference": s.dwp_reference,
            "rejected_at": _iso(s.rejected_at),
            "rejection_reasons": list(s.rejection_reasons),
            "accepted_at": _iso(s.accepted_at),
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
            view["timeline"] = store.submission_timeline(session, s.id)
        return view

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
            refuse_if_erased(session, case_ref)
            case = store.require_case(session, case_ref)
            self._check_sendable_case(case)
            if supersedes is not None:
                self._check_supersedes(session, case, supersedes)
            if intake_ref is not None and (done := store.submission_by_intake_ref(session, intake_ref)):
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
            case = store.require_case(session, case_ref)
            assert case.id is not None
            stored = self.documents.put(data, kind="reports")
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
                version=store.latest_version(session, case.id, report_type) + 1,
                supersedes_id=supersedes,
                state=SubmissionState.RECEIVED,
                preflight=report.to_dict(),
                intake_ref=intake_ref,
                created_at=self.now(),
            )
            store.add_audited(
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
                store.move_submission(
                    session,
                    submission,
                    SubmissionState.PREFLIGHT_FAILED,
                    now=self.now(),
                    actor=actor,
                    action="preflight-failed",
                    detail={"blocking": failed},
                )
            return submission

    def preflight(self, pdf: Path, *, case_ref: str | None, report_type: str) -> PreflightReport:
        """`mailroom preflight`: the checks `submit` runs, with no change to anything."""
        data = self._read_pdf(pdf)
        font_exception = False
        if case_ref:
            with transaction(self.engine) as session:
                case = store.require_case(session, case_ref)
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
        old = store.get_submission(session, supersedes)
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
            store.move_submission(
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
        store.move_submission(
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

    def queue(self, *, state: str | None = None) -> list[dict[str, Any]]:
        if state is not None and state not in set(SubmissionState):
            known = ", ".join(s.value for s in SubmissionState)
            raise InputError(f"unknown state {state!r} (known: {known})")
        with transaction(self.engine) as session:
            rows = []
            for s in store.list_submissions(session, state=state):
                case = store.case_by_id(session, s.case_id)
                rows.append(
                    {
                        "id": s.id,
                        "case_ref": case.case_ref,
                        "report_type": s.report_type,
                        "version": s.version,
                        "state": s.state,
                        "attempts": s.attempts,
                        "next_attempt_at": _iso(s.next_attempt_at),
                        "last_smtp": f"{s.last_smtp_code} {s.last_smtp_text}" if s.last_smtp_code else None,
                        "message_id": s.message_id,
                    }
                )
            return rows

    def escalations(self) -> list[dict[str, Any]]:
        """Every reminder and escalation fired, newest first, with the state of its notice."""
        with transaction(self.engine) as session:
            rows = session.exec(
                select(Escalation, Clock, Case, Notice)
                .join(Clock, col(Clock.id) == col(Escalation.clock_id))
                .join(Case, col(Case.id) == col(Clock.case_id))
                .join(Notice, col(Notice.id) == col(Escalation.notice_id), isouter=True)
                .order_by(col(Escalation.id).desc())
            ).all()
            return [
                {
                    "id": e.id,
                    "case_ref": case.case_ref,
                    "submission_id": clock.submission_id,
                    "clock": clock.kind,
                    "level": e.level,
                    "kind": e.kind,
                    "to": e.recipients,
                    "created_at": _iso(e.created_at),
                    "notice_state": notice.state if notice else None,
                    "sent_at": _iso(notice.sent_at) if notice else None,
                }
                for e, clock, case, notice in rows
            ]

    def management_information(self, start: date | None, end: date | None) -> dict[str, Any]:
        """`report mi`: submissions created in [start, end] (whole days, UTC), summarised."""
        with transaction(self.engine) as session:
            query = select(Submission)
            if start:
                query = query.where(col(Submission.created_at) >= datetime.combine(start, time(0), UTC))
            if end:
                query = query.where(
                    col(Submission.created_at) < datetime.combine(end + timedelta(days=1), time(0), UTC)
                )
            facts = [
                SubmissionFacts(
                    s.report_type,
                    s.state,
                    s.sent_at,
                    s.acknowledged_at,
                    s.rejected_at,
                    tuple(s.rejection_reasons),
                    s.supersedes_id is not None,
                )
                for s in session.exec(query).all()
            ]
        summary = summarise(facts, self.settings.rejection_reasons)
        return {
            "from": start.isoformat() if start else None,
            "to": end.isoformat() if end else None,
            **summary,
        }

    def verify_audit(self) -> tuple[int, list[str]]:
        with transaction(self.engine) as session:
            events = audit.all_events(session)
            return len(events), audit.verify(events)

    # -- admin actions on the queue ------------------------------------------------------------------

    def hold(self, submission_id: int, *, actor: str) -> Submission:
        """Stop a submission going out until it is released."""
        return self._admin_move(submission_id, SubmissionState.HELD, actor=actor, action="held")

    def release(self, submission_id: int, *, actor: str) -> Submission:
        """Put a held submission back in the queue (a restricted case's report goes out only this way)."""
        with transaction(self.engine) as session:
            submission = store.get_submission(session, submission_id)
            self._require_state(submission, {SubmissionState.HELD})
            case = store.case_by_id(session, submission.case_id)
            self._check_sendable_case(case)
            self._requeue(session, submission, actor=actor, action="released")
            return submission

    def retry(self, submission_id: int, *, actor: str) -> Submission:
        """Send a failed or deferred submission again now, with the same Message-ID."""
        with transaction(self.engine) as session:
            submission = store.get_submission(session, submission_id)
            self._require_state(submission, {SubmissionState.FAILED, SubmissionState.DEFERRED})
            self._check_sendable_case(store.case_by_id(session, submission.case_id))
            self._requeue(session, submission, actor=actor, action="retry")
            return submission

    def cancel(self, submission_id: int, *, actor: str) -> Submission:
        """Never send this submission; its running clocks are cancelled too."""
        return self._admin_move(submission_id, SubmissionState.CANCELLED, actor=actor, action="cancelled")

    def _admin_move(
        self, submission_id: int, target: SubmissionState, *, actor: str, action: str
    ) -> Submission:
        with transaction(self.engine) as session:
            submission = store.get_submission(session, submission_id)
            if submission.state == SubmissionState.SENDING:
                raise Conflict(f"submission {submission_id} is being sent right now; try again in a minute")
            if target not in SUBMISSION_MOVES[SubmissionState(submission.state)]:
                raise Conflict(f"submission {submission_id} is {submission.state}; it cannot be {action}")
            store.move_submission(session, submission, target, now=self.now(), actor=actor, action=action)
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
        store.move_submission(
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


def _read_case_csv(path: Path) -> Iterator[tuple[int, NewCase]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as UTF-8 text: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    columns = set(reader.fieldnames or ())
    if "case_ref" not in columns:
        raise InputError(f"{path}:1: the header row must name a case_ref column")
    unknown = columns - {"case_ref", "atw_ref", "prap_id", "nino", "performance_manager", "restricted"}
    if unknown:
        raise InputError(f"{path}:1: unknown column(s): {', '.join(sorted(unknown))}")
    for row in reader:
        line = reader.line_num
        if None in row:
            raise InputError(f"{path}:{line}: more fields than the header has")
        yield (
            line,
            NewCase(
                case_ref=(row.get("case_ref") or "").strip(),
                atw_ref=row.get("atw_ref"),
                prap_id=row.get("prap_id"),
                nino=_blank_to_none(row.get("nino")),
                performance_manager=_blank_to_none(row.get("performance_manager")),
                restricted=(row.get("restricted") or "").strip().lower() in {"1", "true", "yes"},
            ),
        )


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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
