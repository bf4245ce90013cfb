"""What the DWP simulator does with each report: a scenario file of rules, read once at start.

Pure: a report's facts in, a decision out. The first rule whose conditions all hold decides; a report no
rule matches is acknowledged and never rejected. A scenario file is TOML:

    acknowledge_after_seconds = 0.5          # the inbox's automated response; real DWP: seconds

    [[rule]]
    failing = "employment_status"            # the report's preflight check of that name warns or fails
    action = "reject"                        # acknowledge, then return it for rework ...
    reasons = ["employment-status-missing"]  # ... with these Annex F reasons (codes of [rejection_reasons])
    after_seconds = 5

    [[rule]]
    every = 3                                # the 3rd, 6th, 9th ... report the simulator receives
    action = "reject"
    reasons = ["progress-detail-missing"]

Conditions: `every` (N), `failing` (a preflight check: readable, case_ref, report_type, employment_status,
signature, fonts), `case_ref`, `report_type`. Actions: `acknowledge`, `reject`, `ignore` (no response at
all, as when the inbox is down: the acknowledgement clock then escalates).
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from mailroom.core.config import PREFLIGHT_CHECKS
from mailroom.core.errors import ConfigError

DEFAULT_ACK_SECONDS = 0.5
DEFAULT_REJECT_SECONDS = 5.0
ACK_KEY = "acknowledge_after_seconds"

DEFAULT_SCENARIO = """\
# What the harness's DWP simulator does with each report it receives (mailroom harness --scenario FILE).
# The first [[rule]] whose conditions all hold decides; a report no rule matches is acknowledged only.
# Conditions: every = N, failing = "<preflight check>", case_ref = "...", report_type = "...".
# Actions: "acknowledge", "reject" (acknowledge, then return it for rework), "ignore" (no response at all).

# The inbox's automated response arrives this many seconds after the report.
acknowledge_after_seconds = 0.5

[[rule]]
# A report with no statement of the customer's employment status (Annex F section 5). Preflight blocks
# these by default, so they reach DWP only if [preflight] blocking leaves employment_status out.
failing = "employment_status"
action = "reject"
reasons = ["employment-status-missing"]
after_seconds = 5

[[rule]]
# Not Arial 12 pt (Annex F section 3): preflight only warns about fonts by default, DWP returns it.
failing = "fonts"
action = "reject"
reasons = ["format"]
after_seconds = 5

[[rule]]
# And every third report, whatever it says.
every = 3
action = "reject"
reasons = ["progress-detail-missing"]
after_seconds = 5
"""


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    REJECT = "reject"
    IGNORE = "ignore"


@dataclass(frozen=True)
class ReportFacts:
    """What the simulator read from one report: its arrival number and what preflight found."""

    number: int
    case_ref: str | None
    report_type: str | None
    not_passing: frozenset[str]  # preflight checks that warned or failed


@dataclass(frozen=True)
class Rule:
    action: Action
    every: int | None = None
    failing: str | None = None
    case_ref: str | None = None
    report_type: str | None = None
    reasons: tuple[str, ...] = ()
    after_seconds: float = DEFAULT_REJECT_SECONDS

    def matches(self, facts: ReportFacts) -> bool:
        return (
            (self.every is None or facts.number % self.every == 0)
            and (self.failing is None or self.failing in facts.not_passing)
            and (self.case_ref is None or self.case_ref == facts.case_ref)
            and (self.report_type is None or self.report_type == facts.report_type)
        )


@dataclass(frozen=True)
class Decision:
    """What happens to one report: an acknowledgement (or none), then perhaps a rejection."""

    acknowledge_after: float | None
    reject_after: float | None = None
    reasons: tuple[str, ...] = ()
    rule: int | None = None  # 1-based index of the deciding rule; None: no rule matched


@dataclass(frozen=True)
class Scenario:
    acknowledge_after_seconds: float = DEFAULT_ACK_SECONDS
    rules: tuple[Rule, ...] = ()

    def decide(self, facts: ReportFacts) -> Decision:
        for index, rule in enumerate(self.rules, start=1):
            if not rule.matches(facts):
                continue
            if rule.action is Action.IGNORE:
                return Decision(acknowledge_after=None, rule=index)
            if rule.action is Action.REJECT:
                return Decision(self.acknowledge_after_seconds, rule.after_seconds, rule.reasons, index)
            return Decision(self.acknowledge_after_seconds, rule=index)
        return Decision(self.acknowledge_after_seconds)


def load_scenario(path: Path, *, known_reasons: Collection[str]) -> Scenario:
    """Read and check a scenario file; ConfigError names the file, the rule and the key."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, None, "scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, None, f"cannot read the scenario: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"not valid TOML: {exc}") from None
    return parse_scenario(data, source=source, known_reasons=known_reasons)


def parse_scenario(data: Mapping[str, Any], *, source: str, known_reasons: Collection[str]) -> Scenario:
    unknown = set(data) - {"acknowledge_after_seconds", "rule"}
    if unknown:
        raise ConfigError(
            source, ", ".join(sorted(unknown)), "unknown key (known: acknowledge_after_seconds, rule)"
        )
    ack = _seconds(
        data.get("acknowledge_after_seconds", DEFAULT_ACK_SECONDS), source, "acknowledge_after_seconds"
    )
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(source, "rule", "must be an array of tables: [[rule]]")
    rules = tuple(_rule(raw, source, f"rule {n}", known_reasons) for n, raw in enumerate(raw_rules, start=1))
    return Scenario(acknowledge_after_seconds=ack, rules=rules)


_RULE_KEYS = {"action", "every", "failing", "case_ref", "report_type", "reasons", "after_seconds"}


def _rule(raw: Any, source: str, where: str, known_reasons: Collection[str]) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, where, "must be a table")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ConfigError(source, where, f"unknown key(s) {', '.join(sorted(unknown))}")
    try:
        action = Action(raw.get("action", ""))
    except ValueError:
        raise ConfigError(source, f"{where} action", "must be acknowledge, reject or ignore") from None
    every = raw.get("every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigError(source, f"{where} every", "must be a whole number of at least 1")
    failing = raw.get("failing")
    if failing is not None and failing not in PREFLIGHT_CHECKS:
        raise ConfigError(source, f"{where} failing", f"must be one of {', '.join(sorted(PREFLIGHT_CHECKS))}")
    reasons = _reasons(raw.get("reasons", []), action, source, f"{where} reasons", known_reasons)
    return Rule(
        action=action,
        every=every,
        failing=failing,
        case_ref=_text(raw.get("case_ref"), source, f"{where} case_ref"),
        report_type=_text(raw.get("report_type"), source, f"{where} report_type"),
        reasons=reasons,
        after_seconds=_seconds(
            raw.get("after_seconds", DEFAULT_REJECT_SECONDS), source, f"{where} after_seconds"
        ),
    )


def _reasons(value: Any, action: Action, source: str, where: str, known: Collection[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(source, where, "must be a list of reason codes")
    if action is Action.REJECT and not value:
        raise ConfigError(source, where, "a reject rule needs at least one reason")
    if action is not Action.REJECT and value:
        raise ConfigError(source, where, "only a reject rule has reasons")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ConfigError(source, where, f"unknown reason(s) {', '.join(unknown)} (see [rejection_reasons])")
    return tuple(value)


def _seconds(value: Any, source: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise ConfigError(source, where, "must be a number of seconds from 0 to 3600")
    return float(value)


def _text(value: Any, source: str, where: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(source, where, "must be a non-empty string")
    return value
