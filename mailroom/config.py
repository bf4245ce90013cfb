"""Configuration: one TOML file loaded into frozen, validated settings.

Every key has a default here and a line in config/mailroom.example.toml (a test keeps the two in step).
Secrets never live in the TOML: keys ending in `_file` name a file that holds the secret, and
`$CREDENTIALS_DIRECTORY` in such a path is expanded so systemd's `LoadCredential=` works. Secret values
are read only when needed (`read_secret`) and never appear in errors or logs.

A bad file raises ConfigError naming the file, the key and what is wrong; the CLI exits 78 with that line.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailroom.errors import ConfigError
from parsers.fonts import ARIAL_NAMES

DEFAULT_CONFIG_PATH = Path("/etc/mailroom/mailroom.toml")
CONFIG_ENV = "MAILROOM_CONFIG"

DWP_INBOX = "accesstowork.mhss@dwp.gov.uk"
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

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
    """Wording added to the classifier's built-in rules (parsers/types.py): case-insensitive regular
    expressions. The programme changes its wording by memo; a site adds the new wording here."""

    rejection_phrases: tuple[str, ...] = ()
    rejection_subjects: tuple[str, ...] = ()
    acknowledgement_phrases: tuple[str, ...] = ()
    out_of_office_phrases: tuple[str, ...] = ()
    hedge_phrases: tuple[str, ...] = ()
    bulletin_phrases: tuple[str, ...] = ()
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
    allowed_fonts: tuple[str, ...] = ARIAL_NAMES
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
class DaemonSettings:
    test_mode: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sweep_seconds: int = 30


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
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
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


def config_path(cli_value: str | None) -> Path:
    """Where the config comes from: --config, then $MAILROOM_CONFIG, then /etc/mailroom/mailroom.toml."""
    return Path(cli_value or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(path: Path) -> Settings:
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, None, "file not found (use --config PATH or MAILROOM_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read the file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"not valid TOML: {exc}") from None
    return settings_from_mapping(data, source=source, base_dir=path.parent)


def settings_from_mapping(data: Mapping[str, Any], *, source: str, base_dir: Path) -> Settings:
    values: dict[str, Any] = {"source": source}
    section_types = _section_types()
    for name, section in data.items():
        if name == "report_types":
            values[name] = _report_types(section, source)
        elif name == "rejection_reasons":
            values[name] = _reasons(section, source)
        elif name in section_types:
            if not isinstance(section, Mapping):
                raise ConfigError(source, f"[{name}]", "must be a table")
            values[name] = _build_section(section_types[name], name, section, source, base_dir)
        else:
            known = ", ".join(sorted([*section_types, "report_types", "rejection_reasons"]))
            raise ConfigError(source, f"[{name}]", f"unknown section (known: {known})")
    settings = Settings(**values)
    _cross_checks(settings)
    return settings


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings) if is_dataclass(hints[f.name])}


def _build_section(cls: type, name: str, raw: Mapping[str, Any], source: str, base_dir: Path) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"[{name}] {key}"
        if key not in known:
            raise ConfigError(source, where, f"unknown key (known: {', '.join(known)})")
        converted = _convert(hints[key], value, source, where, base_dir)
        _check(known[key].metadata.get("check"), converted, source, where)
        kwargs[key] = converted
    return cls(**kwargs)


def _convert(hint: Any, value: Any, source: str, where: str, base_dir: Path) -> Any:
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in get_args(hint) if a is not type(None)]
        if value == "":
            return None
        return _convert(inner[0], value, source, where, base_dir)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(source, where, f"must be one of {', '.join(map(repr, allowed))}, not {value!r}")
        return value
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(source, where, "must be a table")
        item = get_args(hint)[1]
        return {str(k): _convert(item, v, source, f"{where}.{k}", base_dir) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(source, where, "must be a list")
        item = get_args(hint)[0]
        return tuple(_convert(item, v, source, where, base_dir) for v in value)
    return _convert_scalar(hint, value, source, where, base_dir)


def _convert_scalar(hint: Any, value: Any, source: str, where: str, base_dir: Path) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, where, f"must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(source, where, f"must be a whole number >= 0, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(source, where, f"must be a number >= 0, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(source, where, f"must be a string, not {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(source, where, "must be a non-empty path string")
        path = Path(expand_credentials(value))
        return path if path.is_absolute() else base_dir / path
    if hint is time:
        return _time(value, source, where)
    if hint is date:
        if isinstance(value, date):
            return value
        if isinstance(value, str):  # a quoted "2026-12-29" is meant as the date it spells
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(source, where, f"must be a date like 2026-12-24, not {value!r}")
    raise ConfigError(source, where, "unsupported type")  # pragma: no cover - a programming error


def _time(value: Any, source: str, where: str) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
        hours, minutes = map(int, value.split(":"))
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    raise ConfigError(source, where, f'must be a time like "17:00", not {value!r}')


def _check(kind: str | None, value: Any, source: str, where: str) -> None:
    addresses = value if kind == "emails" else (value,) if kind == "email" else ()
    for address in addresses:
        if address and not _EMAIL.match(address):
            raise ConfigError(source, where, f"not an e-mail address: {address!r}")


def _report_types(raw: Any, source: str) -> tuple[ReportType, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(source, "[report_types]", 'must be a table of code = "label"')
    result = []
    for code, label in raw.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", code) or not isinstance(label, str) or not label:
            raise ConfigError(
                source, f"[report_types] {code}", "code must be lower-case-with-dashes, label text"
            )
        result.append(ReportType(code, label))
    return tuple(result)


def _reasons(raw: Any, source: str) -> dict[str, str]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(source, "[rejection_reasons]", 'must be a table of code = "label"')
    for code, label in raw.items():
        if not isinstance(label, str) or not label:
            raise ConfigError(source, f"[rejection_reasons] {code}", "label must be text")
    return dict(raw)


def _cross_checks(s: Settings) -> None:
    src = s.source
    _check_classify(s)
    for key, value in (
        ("[provider] from_address", s.provider.from_address),
        ("[provider] team_address", s.provider.team_address),
        ("[escalation] performance_manager", s.escalation.performance_manager),
    ):
        if not value:
            raise ConfigError(src, key, "is required")
    for name, conn in (("smtp", s.smtp), ("imap", s.imap)):
        if conn.security == "none" and not (conn.host in _LOOPBACK_HOSTS and conn.allow_insecure_loopback):
            raise ConfigError(
                src,
                f"[{name}] security",
                '"none" sends in plain text; allowed only to a loopback host '
                "with allow_insecure_loopback = true",
            )
        if conn.auth == "xoauth2" and not conn.token_command:
            raise ConfigError(src, f"[{name}] token_command", 'is required when auth = "xoauth2"')
    if s.imap.idle_renew_minutes < 1 or s.imap.idle_renew_minutes > 9:
        raise ConfigError(
            src, "[imap] idle_renew_minutes", "must be between 1 and 9 (servers drop idle clients)"
        )
    try:
        re.compile(s.matching.case_ref_pattern)
    except re.error as exc:
        raise ConfigError(
            src, "[matching] case_ref_pattern", f"not a valid regular expression: {exc}"
        ) from None
    try:
        ZoneInfo(s.calendar.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(src, "[calendar] timezone", f"unknown time zone {s.calendar.timezone!r}") from None
    if s.gpg.encrypt_at_rest and not s.gpg.recipients:
        raise ConfigError(
            src, "[gpg] recipients", "at least one key is required while encrypt_at_rest = true"
        )
    if not s.store.url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(src, "[store] url", "must be a sqlite:/// or postgresql+psycopg:// URL")
    if s.outbox.batch_size < 1:
        raise ConfigError(src, "[outbox] batch_size", "must be at least 1")
    if s.outbox.poll_seconds <= 0:
        raise ConfigError(src, "[outbox] poll_seconds", "must be more than 0")
    if s.daemon.sweep_seconds < 1:
        raise ConfigError(src, "[daemon] sweep_seconds", "must be at least 1")
    unknown_blocking = set(s.preflight.blocking) - PREFLIGHT_CHECKS
    if unknown_blocking:
        raise ConfigError(
            src, "[preflight] blocking", f"unknown check(s): {', '.join(sorted(unknown_blocking))}"
        )


def _check_classify(s: Settings) -> None:
    c = s.classify
    lists = {f.name: getattr(c, f.name) for f in fields(c) if f.name != "reason_phrases"}
    lists.update({f"reason_phrases.{code}": phrases for code, phrases in c.reason_phrases.items()})
    for key, patterns in lists.items():
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    s.source, f"[classify] {key}", f"{pattern!r} is not a valid regular expression: {exc}"
                ) from None
    unknown = sorted(set(c.reason_phrases) - set(s.rejection_reasons))
    if unknown:
        raise ConfigError(
            s.source,
            "[classify] reason_phrases",
            f"unknown reason code(s) {', '.join(unknown)}; add them to [rejection_reasons] first",
        )


PREFLIGHT_CHECKS = frozenset(
    {"readable", "case_ref", "report_type", "employment_status", "signature", "fonts"}
)


def expand_credentials(value: str) -> str:
    """Expand $CREDENTIALS_DIRECTORY (systemd LoadCredential=) in a path; nothing else is expanded."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    return value.replace("${CREDENTIALS_DIRECTORY}", directory).replace("$CREDENTIALS_DIRECTORY", directory)


def read_secret(path: Path | None, *, source: str, key: str) -> str:
    """Read a secret from its file. Errors name the key and the file, never the content."""
    if path is None:
        raise ConfigError(source, key, "is required for this command")
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(source, key, f"file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, key, f"{path} is not UTF-8 text") from None
    if mode & 0o077:
        raise ConfigError(source, key, f"{path} is readable by group or others; chmod 600 it")
    if not value:
        raise ConfigError(source, key, f"{path} is empty")
    return value
