"""Configuration: one TOML file loaded into frozen, validated settings.

Every key has a default here and a line in config/mailroom.example.toml (a test keeps the two in step).
Secrets never live in the TOML: keys ending in `_file` name a file that holds the secret, and
`$CREDENTIALS_DIRECTORY` in such a path is expanded so systemd's `LoadCredential=` works. Secret values
are read only when needed (`mailroom.edges.configfile.read_secret`) and never appear in errors or logs.

A bad file raises ConfigError naming the file, the key and what is wrong; the CLI exits 78 with that line.
This module holds the settings' shapes and defaults; config_parse turns a TOML mapping into them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any, Literal

DWP_INBOX = "accesstowork.mhss@dwp.gov.uk"
# The preflight's Arial family (parsers/fonts.py holds the same list; a test keeps the two equal, so the
# core need not import the parsers).
ARIAL_FAMILY = (
    "Arial",
    "ArialMT",
    "Arial-BoldMT",
    "Arial-ItalicMT",
    "Arial-BoldItalicMT",
    "Arial-Bold",
    "Arial-Italic",
    "Arial-BoldItalic",
    "Arial,Bold",
    "Arial,Italic",
    "Arial,BoldItalic",
)
EMAIL_PATTERN = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

Security = Literal["tls", "starttls", "none"]
AuthMethod = Literal["login", "xoauth2"]


def _email(**kw: Any) -> Any:
    return field(metadata={"check": "email"}, **kw)


def _emails(**kw: Any) -> Any:
    return field(metadata={"check": "emails"}, **kw)


@dataclass(frozen=True)
class ReportType:
    code: str
    label: str


DEFAULT_REPORT_TYPES: tuple[ReportType, ...] = (
    ReportType("support-plan", "Support Plan"),
    ReportType("six-month-report", "6 Month Report"),
    ReportType("exit-report", "Exit Report"),
    ReportType("monthly-update", "Monthly Update"),
    ReportType("other", "Report"),
)

# Annex F §5 and ch.3 §3.05: why DWP returns a report for rework. Codes are stable; labels are for people.
DEFAULT_REJECTION_REASONS: Mapping[str, str] = {
    "incorrect-information": "Incorrect information",
    "employment-status-missing": "No confirmation whether the customer is or is not in employment",
    "spelling-grammar": "Spelling or grammar errors",
    "support-not-justified": "Support not fully justified or detailed",
    "progress-detail-missing": "Too little detail on progress during the support or sustainment period",
    "benefit-not-explained": "No explanation of how the support will help",
    "format": "Format not to the specified standard (plain language, Arial 12 pt)",
    "other": "Other reason",
}


@dataclass(frozen=True)
class ProviderSettings:
    name: str = "MHSS provider"
    from_address: str = _email(default="")
    team_address: str = _email(default="")
    # Folder of site-edited templates (cover.txt, reminder.txt, escalation.txt, send-failure.txt).
    templates_dir: Path | None = None


@dataclass(frozen=True)
class DwpSettings:
    inbox: str = _email(default=DWP_INBOX)
    trusted_domains: tuple[str, ...] = ("dwp.gov.uk",)
    ack_senders: tuple[str, ...] = _emails(default=(DWP_INBOX,))


@dataclass(frozen=True)
class EscalationSettings:
    performance_manager: str = _email(default="")
    repeat_every_days: int = 2
    max_escalations: int = 3


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password_file: Path | None = None
    auth: AuthMethod = "login"
    token_command: tuple[str, ...] = ()
    ca_file: Path | None = None
    timeout_seconds: float = 30.0
    allow_insecure_loopback: bool = False
    local_hostname: str = ""


@dataclass(frozen=True)
class ImapSettings:
    host: str = "localhost"
    port: int = 993
    security: Security = "tls"
    username: str = ""
    password_file: Path | None = None
    auth: AuthMethod = "login"
    token_command: tuple[str, ...] = ()
    ca_file: Path | None = None
    timeout_seconds: float = 60.0
    allow_insecure_loopback: bool = False
    inbox_folder: str = "INBOX"
    processed_folder: str = "MHSS/Processed"
    quarantine_folder: str = "MHSS/Quarantine"
    idle_renew_minutes: int = 9
    poll_seconds: float = 60.0


@dataclass(frozen=True)
class StoreSettings:
    url: str = "sqlite:////var/lib/mailroom/mailroom.db"
    documents_dir: Path = Path("/var/lib/mailroom/documents")


@dataclass(frozen=True)
class GpgSettings:
    home: Path = Path("/var/lib/mailroom/gnupg")
    recipients: tuple[str, ...] = ()
    encrypt_at_rest: bool = True
    passphrase_file: Path | None = None
    binary: str = "gpg"


@dataclass(frozen=True)
class ClockSettings:
    acknowledgement_days: int = 1
    decision_days: int = 5
    correction_days: int = 5
    correction_reminders: tuple[int, ...] = (2, 1)
    acknowledgement_reminders: tuple[int, ...] = ()
    count_event_day: bool = False


@dataclass(frozen=True)
class CalendarSettings:
    division: Literal["england-and-wales", "scotland", "northern-ireland"] = "england-and-wales"
    timezone: str = "Europe/London"
    day_end: time = time(17, 0)
    extra_closures: tuple[date, ...] = ()


@dataclass(frozen=True)
class MatchingSettings:
    case_ref_pattern: str = r"MH-\d{6}"
    nino_hmac_key_file: Path | None = None


@dataclass(frozen=True)
class ClassifySettings:
    """Wording added to the classifier's built-in rules (parsers/phrases.py): case-insensitive regular
    expressions. The programme changes its wording by memo; a site adds the new wording here."""

    rejection_phrases: tuple[str, ...] = ()
    rejection_subjects: tuple[str, ...] = ()
    acknowledgement_phrases: tuple[str, ...] = ()
    out_of_office_phrases: tuple[str, ...] = ()
    hedge_phrases: tuple[str, ...] = ()
    bulletin_phrases: tuple[str, ...] = ()
    # The scored reading (docs/classification.md §3): more words for a negative outcome or a requested action.
    outcome_cues: tuple[str, ...] = ()
    action_cues: tuple[str, ...] = ()
    # Reason code (from [rejection_reasons]) -> further phrases that name it.
    reason_phrases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrustSettings:
    authserv_ids: tuple[str, ...] = ()
    require_authentication: bool = True


@dataclass(frozen=True)
class OutboxSettings:
    retry_initial_minutes: float = 5.0
    retry_max_minutes: float = 60.0
    max_lifetime_days: float = 5.0
    lease_seconds: int = 300
    batch_size: int = 200
    poll_seconds: float = 5.0
    redirect_all_to: str = _email(default="")
    extra_allowed_recipients: tuple[str, ...] = _emails(default=())


@dataclass(frozen=True)
class IntakeSettings:
    spool_dir: Path | None = None
    max_bytes: int = 20_000_000


@dataclass(frozen=True)
class PreflightSettings:
    max_pages: int = 100
    allowed_fonts: tuple[str, ...] = ARIAL_FAMILY
    font_aliases: tuple[str, ...] = ()
    font_size: float = 12.0
    font_size_tolerance: float = 0.5
    font_warn_share: float = 0.05
    font_fail_share: float = 0.20
    blocking: tuple[str, ...] = ("readable", "case_ref", "report_type", "employment_status")
    signature_missing: Literal["warn", "fail"] = "warn"
    employment_patterns: tuple[str, ...] = ()
    signature_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetentionSettings:
    documents_days: int = 2190


@dataclass(frozen=True)
class AuditSettings:
    # The HMAC key that signs audit checkpoints (`mailroom audit checkpoint`, `audit verify --since`)
    checkpoint_key_file: Path | None = None


@dataclass(frozen=True)
class DaemonSettings:
    test_mode: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sweep_seconds: int = 30
    heartbeat_seconds: int = 15
    # A socket where the daemon's command server takes CLI commands (mailroom/cli/launch.py); None: off
    command_socket: Path | None = None


@dataclass(frozen=True)
class StatusSettings:
    # `mailroom status` exits 1 when an outage has lasted longer than this
    outage_minutes: int = 30


@dataclass(frozen=True)
class DigestSettings:
    enabled: bool = False
    at: time = time(8, 30)
    days_ahead: int = 5


@dataclass(frozen=True)
class MetricsSettings:
    listen: str = ""  # "127.0.0.1:9464" serves Prometheus text format; empty: no endpoint
    textfile: Path | None = None  # node_exporter's textfile collector, rewritten every heartbeat
    allow_remote: bool = False  # a listen address other than loopback needs this


@dataclass(frozen=True)
class Settings:
    """The whole configuration. Built once at start-up and passed explicitly; never a global."""

    source: str = "<defaults>"
    provider: ProviderSettings = field(default_factory=ProviderSettings)
    dwp: DwpSettings = field(default_factory=DwpSettings)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    gpg: GpgSettings = field(default_factory=GpgSettings)
    clocks: ClockSettings = field(default_factory=ClockSettings)
    calendar: CalendarSettings = field(default_factory=CalendarSettings)
    matching: MatchingSettings = field(default_factory=MatchingSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    classify: ClassifySettings = field(default_factory=ClassifySettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    preflight: PreflightSettings = field(default_factory=PreflightSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    report_types: tuple[ReportType, ...] = DEFAULT_REPORT_TYPES
    rejection_reasons: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REJECTION_REASONS))

    def report_type(self, code: str) -> ReportType | None:
        return next((t for t in self.report_types if t.code == code), None)

    def allowed_recipients(self) -> frozenset[str]:
        """The outbound allow-list: misdirected mail is the classic data incident."""
        addresses = {
            self.dwp.inbox,
            self.escalation.performance_manager,
            self.provider.team_address,
            *self.outbox.extra_allowed_recipients,
        }
        return frozenset(a.lower() for a in addresses if a)


def listen_address(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9464" or "[::1]:9464" as (host, port); ValueError says what is wrong."""
    host, colon, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port, e.g. 127.0.0.1:9464")
    return host, int(port)


PREFLIGHT_CHECKS = frozenset(
    {"readable", "case_ref", "report_type", "employment_status", "signature", "fonts"}
)
