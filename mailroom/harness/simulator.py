"""The DWP simulator: DWP's MHSS inbox as the mailroom meets it, for the harness and the demo.

Each report the relay hands over is numbered and read as DWP's staff would read it (the PDF through
`parsers.preflight`); the scenario decides what happens; the automated response and any rejection notice
(built by `mailroom.harness.dwp`) are delivered into the provider's mailbox by LMTP after the scenario's
delays. Everything it receives and sends is kept in its folder: `NNN-report.eml`, `NNN-acknowledgement.eml`,
`NNN-rejection.eml`, so an operator can edit a copy and deliver it by hand.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from enum import StrEnum
from pathlib import Path

from mailroom.core.config import Settings
from mailroom.harness import dwp
from mailroom.harness.courier import Courier
from mailroom.harness.scenario import Decision, ReportFacts, Scenario
from mailroom.service.mailroom import preflight_policy
from parsers.preflight import Outcome, preflight
from parsers.refs import find_case_refs

Deliver = Callable[[bytes], None]


class EventKind(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    IGNORED = "ignored"


@dataclass(frozen=True)
class SimulatorEvent:
    kind: EventKind
    report: int
    case_ref: str | None
    detail: str = ""

    def line(self) -> str:
        about = f"report {self.report} ({self.case_ref or 'no case reference'})"
        return f"DWP simulator: {about} {self.kind}" + (f": {self.detail}" if self.detail else "")


class DwpSimulator:
    """Thread-safe: `receive` is called from the relay's thread, responses go out on the courier's."""

    def __init__(
        self,
        scenario: Scenario,
        settings: Settings,
        *,
        authserv_id: str,
        folder: Path,
        courier: Courier,
        deliver: Deliver,
        now: Callable[[], datetime],
        on_event: Callable[[SimulatorEvent], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.settings = settings
        self.authserv_id = authserv_id
        self.folder = folder
        self._courier = courier
        self._deliver = deliver
        self._now = now
        self._on_event = on_event
        self._numbers = itertools.count(1)
        self._events: list[SimulatorEvent] = []
        self._changed = threading.Condition()

    def receive(self, raw: bytes) -> int:
        """Take a report; what DWP does with it happens on the courier. Returns the report's number."""
        number = next(self._numbers)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.folder / f"{number:03d}-report.eml").write_bytes(raw)
        self._courier.schedule(0, lambda: self._assess(number, raw))
        return number

    @property
    def events(self) -> list[SimulatorEvent]:
        with self._changed:
            return list(self._events)

    def wait_for(self, kind: EventKind, count: int, timeout: float) -> bool:
        """True once `count` events of `kind` have happened in all; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: sum(e.kind is kind for e in self._events) >= count, timeout=timeout
            )

    def _assess(self, number: int, raw: bytes) -> None:
        report = _parse(raw)
        facts = report_facts(report, number, self.settings)
        decision = self.scenario.decide(facts)
        self._emit(SimulatorEvent(EventKind.RECEIVED, number, facts.case_ref, _describe(decision)))
        if decision.acknowledge_after is None:
            self._emit(SimulatorEvent(EventKind.IGNORED, number, facts.case_ref, "no automated response"))
            return
        self._courier.schedule(
            decision.acknowledge_after, lambda: self._acknowledge(number, facts.case_ref, report)
        )
        if decision.reject_after is not None:
            self._courier.schedule(
                decision.acknowledge_after + decision.reject_after,
                lambda: self._reject(number, facts.case_ref, report, decision.reasons),
            )

    def _acknowledge(self, number: int, case_ref: str | None, report: EmailMessage) -> None:
        reply = dwp.acknowledgement(report, now=self._now(), authserv_id=self.authserv_id)
        self._send(number, "acknowledgement", reply)
        self._emit(SimulatorEvent(EventKind.ACKNOWLEDGED, number, case_ref, "automated response delivered"))

    def _reject(
        self, number: int, case_ref: str | None, report: EmailMessage, reasons: tuple[str, ...]
    ) -> None:
        reply = dwp.rejection(
            report, reasons, now=self._now(), authserv_id=self.authserv_id, case_ref=case_ref or "unknown"
        )
        self._send(number, "rejection", reply)
        self._emit(
            SimulatorEvent(
                EventKind.REJECTED, number, case_ref, f"returned for rework ({', '.join(reasons)})"
            )
        )

    def _send(self, number: int, kind: str, reply: EmailMessage) -> None:
        raw = reply.as_bytes()
        (self.folder / f"{number:03d}-{kind}.eml").write_bytes(raw)
        self._deliver(raw)

    def _emit(self, event: SimulatorEvent) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()
        if self._on_event is not None:
            self._on_event(event)


def report_facts(report: EmailMessage, number: int, settings: Settings) -> ReportFacts:
    """Case, report type and the preflight checks that did not pass, read from the report e-mail."""
    subject = str(report.get("Subject", ""))
    refs = find_case_refs(subject, settings.matching.case_ref_pattern)
    case_ref = refs[0] if refs else None
    report_type = next((t.code for t in settings.report_types if f"MHSS {t.label} - " in subject), None)
    pdf = _pdf(report)
    if pdf is None:
        return ReportFacts(number, case_ref, report_type, frozenset({"readable"}))
    findings = preflight(
        pdf, preflight_policy(settings), case_ref=case_ref or "", report_type=report_type or "other"
    ).findings
    return ReportFacts(
        number,
        case_ref,
        report_type,
        frozenset(str(f.check) for f in findings if f.outcome is not Outcome.PASS),
    )


def rejection_for(
    report_file: Path, reasons: tuple[str, ...], *, settings: Settings, authserv_id: str, now: datetime
) -> bytes:
    """A rejection notice for a report the simulator kept: for returning a report by hand."""
    report = _parse(report_file.read_bytes())
    refs = find_case_refs(str(report.get("Subject", "")), settings.matching.case_ref_pattern)
    case_ref = refs[0] if refs else "unknown"
    return dwp.rejection(report, reasons, now=now, authserv_id=authserv_id, case_ref=case_ref).as_bytes()


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # the default policy always builds EmailMessage
    return message


def _pdf(report: EmailMessage) -> bytes | None:
    for part in report.iter_attachments():
        if part.get_content_type() == "application/pdf":
            content = part.get_content()
            return content if isinstance(content, bytes) else None
    return None


def _describe(decision: Decision) -> str:
    rule = f"rule {decision.rule}" if decision.rule else "no rule matched"
    if decision.acknowledge_after is None:
        return f"{rule}: the inbox stays silent"
    if decision.reject_after is None:
        return f"{rule}: acknowledge in {decision.acknowledge_after:g} s"
    return (
        f"{rule}: acknowledge in {decision.acknowledge_after:g} s, "
        f"return for rework {decision.reject_after:g} s later ({', '.join(decision.reasons)})"
    )
