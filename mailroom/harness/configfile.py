"""The harness's ready-made mailroom.toml: every server on 127.0.0.1, every file under the harness folder.

Pure: the harness's layout in, TOML text out. Only the keys that differ from a production config are
written; the rest keep the defaults documented in config/mailroom.example.toml.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROVIDER_NAME = "Harness Support Services"
MAILBOX = "reports@provider.test"  # sends the reports; DWP's replies come back here
TEAM = "team@provider.test"  # reminders and alerts
PERFORMANCE_MANAGER = "performance.manager@dwp.gov.uk"
AUTHSERV_ID = "mx.provider.test"  # the provider's boundary MTA, as named in Authentication-Results


@dataclass(frozen=True)
class ConfigInputs:
    root: Path
    ca_file: Path
    smtp_port: int
    imaps_port: int
    gpg_home: Path
    gpg_fingerprint: str
    secrets: Path
    log_level: str = "INFO"


def config_text(inputs: ConfigInputs) -> str:
    root, secrets = inputs.root, inputs.secrets
    sections: dict[str, Mapping[str, object]] = {
        "provider": {"name": PROVIDER_NAME, "from_address": MAILBOX, "team_address": TEAM},
        "escalation": {"performance_manager": PERFORMANCE_MANAGER},
        "smtp": {
            "host": "127.0.0.1",
            "port": inputs.smtp_port,
            "security": "starttls",
            "username": MAILBOX,
            "password_file": secrets / "smtp-password",
            "ca_file": inputs.ca_file,
            "timeout_seconds": 10.0,
        },
        "imap": {
            "host": "127.0.0.1",
            "port": inputs.imaps_port,
            "security": "tls",
            "username": MAILBOX,
            "password_file": secrets / "imap-password",
            "ca_file": inputs.ca_file,
            "timeout_seconds": 10.0,
        },
        "store": {"url": f"sqlite:///{root / 'mailroom.db'}", "documents_dir": root / "documents"},
        "gpg": {"home": inputs.gpg_home, "recipients": [inputs.gpg_fingerprint], "encrypt_at_rest": True},
        "matching": {"nino_hmac_key_file": secrets / "nino-hmac-key"},
        "trust": {"authserv_ids": [AUTHSERV_ID]},
        "outbox": {"poll_seconds": 1.0, "retry_initial_minutes": 0.5},
        "intake": {"spool_dir": root / "spool"},
        "daemon": {
            "test_mode": True,
            "log_level": inputs.log_level,
            "sweep_seconds": 5,
            "heartbeat_seconds": 2,
        },
        # On here, off in the example config: the harness shows the daily digest at work.
        "digest": {"enabled": True, "at": "08:30"},
    }
    body = "\n".join(_section(name, values) for name, values in sections.items())
    return HEADER + body


HEADER = """\
# mailroom config for the local harness, written by `mailroom harness`. Everything is on 127.0.0.1 and
# under this folder; nothing can reach DWP. [daemon] test_mode = true allows time travel
# (`mailroom run --once --at ...`): never copy this file to a live system.
#
# [smtp]   the harness relay (aiosmtpd, STARTTLS + AUTH), which hands reports to the DWP simulator
# [imap]   the provider mailbox (Dovecot, IMAPS), where the simulator's responses arrive by LMTP
# [trust]  the simulator's notices carry Authentication-Results from mx.provider.test, as a provider's own
#          boundary MTA would add them to genuine DWP mail

"""


def _section(name: str, values: Mapping[str, object]) -> str:
    lines = [f"[{name}]"] + [f"{key} = {_toml(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(str(value))
