"""A TOML mapping turned into Settings: every value converted to its declared type and checked, unknown keys
refused, then the cross-checks that need several sections. A mistake is one ConfigError naming the key.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailroom.core.config import (
    EMAIL_PATTERN,
    LOOPBACK_HOSTS,
    PREFLIGHT_CHECKS,
    ReportType,
    Settings,
    listen_address,
)
from mailroom.core.errors import ConfigError

UNIX_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the final NUL


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
        if address and not EMAIL_PATTERN.match(address):
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
        if conn.security == "none" and not (conn.host in LOOPBACK_HOSTS and conn.allow_insecure_loopback):
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
    if s.daemon.heartbeat_seconds < 1:
        raise ConfigError(src, "[daemon] heartbeat_seconds", "must be at least 1")
    socket_path = s.daemon.command_socket
    if socket_path is not None and len(os.fsencode(socket_path)) > UNIX_SOCKET_PATH_MAX:
        raise ConfigError(
            src, "[daemon] command_socket", f"longer than a socket path may be ({UNIX_SOCKET_PATH_MAX} bytes)"
        )
    if s.digest.days_ahead < 1:
        raise ConfigError(src, "[digest] days_ahead", "must be at least 1")
    _check_metrics(s)
    unknown_blocking = set(s.preflight.blocking) - PREFLIGHT_CHECKS
    if unknown_blocking:
        raise ConfigError(
            src, "[preflight] blocking", f"unknown check(s): {', '.join(sorted(unknown_blocking))}"
        )


def _check_metrics(s: Settings) -> None:
    if not s.metrics.listen:
        return
    try:
        host, _ = listen_address(s.metrics.listen)
    except ValueError as exc:
        raise ConfigError(s.source, "[metrics] listen", str(exc)) from None
    # Metrics carry no personal data, but they map the service: loopback unless someone decided otherwise.
    if host not in LOOPBACK_HOSTS and not s.metrics.allow_remote:
        raise ConfigError(
            s.source, "[metrics] listen", f"{host} is not loopback; set allow_remote = true to serve it there"
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


def expand_credentials(value: str) -> str:
    """Expand $CREDENTIALS_DIRECTORY (systemd LoadCredential=) in a path; nothing else is expanded."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    return value.replace("${CREDENTIALS_DIRECTORY}", directory).replace("$CREDENTIALS_DIRECTORY", directory)
