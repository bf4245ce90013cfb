"""What the mailroom's own e-mails say: a report's cover text, reminders, escalations and send-failure alerts.

The words come from templates (outbox/templates.py): the package defaults, overridden file by file from
`[provider] templates_dir`. The values come from here, and they are the case reference, the submission
token, the report type and dates only: a template has no way to reach a customer's name or NI number. The
evidence block (what was sent when, the relay's reply, what came back) is rendered here and placed by the
template's `$evidence`, so a site can reword a notice without losing the proof it carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from mailroom.core.config import Settings
from mailroom.core.deadlines import ClockKind
from mailroom.core.errors import ConfigError
from mailroom.core.workdays import WorkCalendar
from mailroom.store.models import Case, Clock, InboundMessage, Submission
from mailroom.store.overview import DueClock, Happened, Waiting
from outbox.templates import RenderedNotice, TemplateError, Templates

COVER_VALUES = ("report_type", "case_ref", "submission_token", "version", "provider_name")
REMINDER_VALUES = (
    *COVER_VALUES,
    "what",
    "waiting_for",
    "due_date",
    "days_left",
    "level",
    "next_step",
    "evidence",
)
ESCALATION_VALUES = (*COVER_VALUES, "due_date", "level", "missing", "evidence")
SEND_FAILURE_VALUES = (*COVER_VALUES, "headline", "reason", "message_id", "dwp_inbox", "submission_id")
NEEDS_REVIEW_VALUES = (
    "case_ref",
    "submission_token",
    "inbound_id",
    "kind",
    "why",
    "received",
    "provider_name",
    "next_step",
)
DIGEST_VALUES = (
    "provider_name",
    "date",
    "days_ahead",
    "due_count",
    "due",
    "review_count",
    "review",
    "since",
    "happened_count",
    "happened",
)
TEMPLATES = {
    "cover": COVER_VALUES,
    "reminder": REMINDER_VALUES,
    "escalation": ESCALATION_VALUES,
    "send-failure": SEND_FAILURE_VALUES,
    "needs-review": NEEDS_REVIEW_VALUES,
    "digest": DIGEST_VALUES,
}

WAITING_FOR = {
    ClockKind.ACKNOWLEDGEMENT: "DWP's automated acknowledgement of the report",
    ClockKind.DECISION: "the end of DWP's decision window",
    ClockKind.CORRECTION: "a corrected report (resubmission) after DWP returned the report for rework",
}
WHAT = {
    ClockKind.ACKNOWLEDGEMENT: "acknowledgement",
    ClockKind.DECISION: "decision",
    ClockKind.CORRECTION: "correction",
}
MISSING = {
    ClockKind.ACKNOWLEDGEMENT: "no acknowledgement",
    ClockKind.DECISION: "no decision",
    ClockKind.CORRECTION: "correction overdue",
}


class Wording:
    def __init__(self, settings: Settings, calendar: WorkCalendar | None = None) -> None:
        self.settings = settings
        self.calendar = calendar
        self.templates = Templates(settings.provider.templates_dir)

    def check(self) -> None:
        """At start: every template loads and uses only values it will be given; else a ConfigError."""
        folder = self.settings.provider.templates_dir
        if folder is not None and not folder.is_dir():
            raise ConfigError(self.settings.source, "[provider] templates_dir", f"{folder} is not a folder")
        try:
            for name, values in TEMPLATES.items():
                self.templates.check(name, values, notice=name != "cover")
        except (TemplateError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(self.settings.source, "[provider] templates_dir", str(exc)) from None

    def cover(self, case: Case, sub: Submission) -> str:
        return self.templates.render_cover("cover", self._report(case, sub))

    def reminder(
        self, case: Case, sub: Submission, clock: Clock, *, level: str, now: datetime
    ) -> RenderedNotice:
        kind = ClockKind(clock.kind)
        if kind == ClockKind.CORRECTION:
            next_step = (
                f"Submit the corrected report with `mailroom submit PDF --case {case.case_ref} --type "
                f"{sub.report_type} --supersedes {sub.id}`."
            )
        else:
            next_step = f"Check that the report reached DWP: `mailroom case show {case.case_ref}`."
        report = self._report(case, sub)
        values = {
            **report,
            "what": WHAT[kind],
            "waiting_for": WAITING_FOR[kind],
            "due_date": self._day(clock.due_at),
            "days_left": str(max(self._calendar().working_days_between(now, clock.due_at), 0)),
            "level": level,
            "next_step": next_step,
            "evidence": self._evidence(report, sub, clock, level),
        }
        return self.templates.render_notice("reminder", values)

    def escalation(self, case: Case, sub: Submission, clock: Clock, *, level: str) -> RenderedNotice:
        report = self._report(case, sub)
        values = {
            **report,
            "due_date": self._day(clock.due_at),
            "level": level,
            "missing": MISSING[ClockKind(clock.kind)],
            "evidence": self._evidence(report, sub, clock, level),
        }
        return self.templates.render_notice("escalation", values)

    def send_failure(self, case: Case, sub: Submission, *, headline: str, reason: str) -> RenderedNotice:
        values = {
            **self._report(case, sub),
            "headline": headline,
            "reason": reason,
            "message_id": sub.message_id or "-",
            "dwp_inbox": self.settings.dwp.inbox,
            "submission_id": str(sub.id),
        }
        return self.templates.render_notice("send-failure", values)

    def review_alert(
        self, message: InboundMessage, case: Case | None, sub: Submission | None
    ) -> RenderedNotice:
        """The team's alert for a message in the review queue: our words and references only, never the
        message's own subject or text, which may name the customer."""
        bounce = message.kind == "bounce"
        case_ref = case.case_ref if case else ("(not known)" if bounce else "(several cases)")
        assign = f"mailroom inbox assign {message.id} {case_ref if case else 'CASE'}"
        if sub is None:
            assign += " --submission ID"
        next_step = (
            f"If it is about one of our reports: `{assign} --as bounce` (the report is marked failed; "
            f"`mailroom queue retry ID` sends it again).\n"
            f"If it is not: `mailroom inbox dismiss {message.id}`."
            if bounce
            else f"If it returns the report for rework: `{assign} --as rejection` (the correction clock runs "
            f"from its arrival).\nIf it is DWP's acknowledgement: `{assign} --as acknowledgement`.\n"
            f"If DWP asks something, answer it, then `mailroom inbox dismiss {message.id}`."
        )
        values = {
            "case_ref": case_ref,
            "submission_token": sub.token if sub else "-",
            "inbound_id": str(message.id),
            "kind": message.kind,
            "why": message.review or "-",
            "received": self._when(message.received_at),
            "provider_name": self.settings.provider.name,
            "next_step": next_step,
        }
        return self.templates.render_notice("needs-review", values)

    def digest(
        self,
        *,
        day: date,
        since: datetime,
        due: Sequence[DueClock],
        review: Sequence[Waiting],
        happened: Sequence[Happened],
    ) -> RenderedNotice:
        """The team's daily digest: case references, submission tokens and dates only."""

        def block(lines: list[str]) -> str:
            return "\n".join(lines) or "  none"

        values = {
            "provider_name": self.settings.provider.name,
            "date": day.strftime("%a %d %b %Y"),
            "days_ahead": str(self.settings.digest.days_ahead),
            "due_count": str(len(due)),
            "due": block(
                [
                    f"  {c.case_ref}  {WHAT[ClockKind(c.kind)]} clock, S-{c.submission_id:06d}, "
                    f"due {self._day(c.due_at)}"
                    for c in due
                ]
            ),
            "review_count": str(len(review)),
            "review": block(
                [
                    f"  message {w.inbound_id} ({w.kind}) about {w.case_ref or '(no single case)'}, "
                    f"received {self._when(w.received_at)}"
                    for w in review
                ]
            ),
            "since": self._when(since),
            "happened_count": str(len(happened)),
            "happened": block(
                [
                    f"  {h.case_ref}  "
                    + (f"S-{h.submission_id:06d} " if h.submission_id else "")
                    + f"{h.what} {self._when(h.at)}"
                    for h in happened
                ]
            ),
        }
        return self.templates.render_notice("digest", values)

    # -- values ------------------------------------------------------------------------------------------

    def _report(self, case: Case, sub: Submission) -> Mapping[str, str]:
        report_type = self.settings.report_type(sub.report_type)
        return {
            "report_type": report_type.label if report_type else sub.report_type,
            "case_ref": case.case_ref,
            "submission_token": sub.token,
            "version": str(sub.version),
            "provider_name": self.settings.provider.name,
        }

    def _evidence(self, report: Mapping[str, str], sub: Submission, clock: Clock, level: str) -> str:
        case_ref, label = report["case_ref"], report["report_type"]
        lines = [
            f"Case: {case_ref}",
            f"Report: {label} (version {sub.version}), submission {sub.token}",
            f"Waiting for: {WAITING_FOR[ClockKind(clock.kind)]}",
            f"Since: {self._when(clock.started_at)}",
            f"Deadline: {self._when(clock.due_at)}",
            f"Calendar: {clock.calendar} working days (holidays {clock.holidays_version})",
            f"Level: {level}",
            "",
            "Evidence:",
            f"  Sent: {self._when(sub.sent_at) if sub.sent_at else 'not sent'}",
            f"  Message-ID: {sub.message_id}",
            f"  Relay's reply: {sub.sent_reply or '-'}",
        ]
        if sub.acknowledged_at:
            lines.append(f"  Acknowledged: {self._when(sub.acknowledged_at)}")
        if sub.rejected_at:
            reasons = ", ".join(sub.rejection_reasons)
            lines.append(f"  Returned for rework: {self._when(sub.rejected_at)} ({reasons})")
        lines.append(f"Details: mailroom case show {case_ref}")
        return "\n".join(lines)

    def _calendar(self) -> WorkCalendar:
        if self.calendar is None:
            raise RuntimeError("Wording needs the work calendar for clock notices")
        return self.calendar

    def _when(self, value: datetime) -> str:
        return value.astimezone(self._calendar().tz).strftime("%a %d %b %Y %H:%M %Z")

    def _day(self, value: datetime) -> str:
        return value.astimezone(self._calendar().tz).strftime("%a %d %b %Y %H:%M")
