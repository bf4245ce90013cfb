"""The CLI beside a busy daemon at the issue's full size (issue 12 part 5): 500 reports, 500 messages.

    .venv/bin/python bench/busy.py [--reports 500] [--messages 500] [--postgres] [--in-process]

The same run as tests/integration/test_busy_cli.py (tests/support/busy.py), which uses 100 + 100 to keep
the suite short: a real `mailroom run` child sends through a local relay slowed at DATA (0.05 s) and reads
the messages delivered by LMTP into a throwaway Dovecot, while four CLI processes loop over `submit`,
`case add`, `queue` + `inbox` and `case show`. Prints p50/p95/max per command against the issue's 2 s,
and the counts: submissions, sent (distinct Message-IDs), inbound rows (distinct).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from email import message_from_bytes
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import base_sections, write_config
from tests.support.busy import BAR_SECONDS, run_busy
from tests.support.commands import socket_path
from tests.support.dovecot import ALICE, Dovecot
from tests.support.gpg import GpgHome
from tests.support.postgres import Postgres
from tests.support.smtpd import SmtpServer

DWP = "accesstowork.mhss@dwp.gov.uk"


def secret(root: Path, name: str, value: str) -> str:
    path = root / name
    path.write_text(value)
    path.chmod(0o600)
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reports", type=int, default=500)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="no [daemon] command_socket: every command imports the application in its own process",
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="busy-"))
    with SmtpServer() as relay, GpgHome() as home, Dovecot() as dovecot:
        key = home.generate_key("documents@provider.example")
        folder = f"B{uuid.uuid4().hex[:10]}"
        with dovecot.session(ALICE) as client:
            client.create_folder(folder)
        sections = base_sections(root)
        sections["smtp"] = {
            "host": relay.host,
            "port": relay.port,
            "security": "starttls",
            "username": relay.username,
            "password_file": secret(root, "smtp.pw", relay.password),
            "ca_file": str(relay.ca_pem),
        }
        sections["gpg"] = {"home": str(home.path), "recipients": [key.fingerprint], "encrypt_at_rest": True}
        sections["imap"] = {
            "host": dovecot.host,
            "port": dovecot.imaps_port,
            "security": "tls",
            "username": dovecot.login_name(ALICE),
            "password_file": secret(root, "imap.pw", dovecot.password(ALICE)),
            "ca_file": str(dovecot.ca_file),
            "inbox_folder": folder,
            "processed_folder": f"{folder}/Processed",
            "quarantine_folder": f"{folder}/Quarantine",
        }
        sections["outbox"] = {"poll_seconds": 0.5}
        if not args.in_process:
            sections["daemon"] = {"command_socket": str(socket_path())}
        sections["trust"] = {"authserv_ids": ["mx.provider.example"]}
        pg = Postgres() if args.postgres else None
        try:
            if pg is not None:
                pg.start()
                sections["store"]["url"] = pg.create_database(f"b{uuid.uuid4().hex[:12]}")
            config = write_config(root / "mailroom.toml", sections)
            from mailroom.cli.main import run

            assert run(["--config", str(config), "db", "upgrade"]) == 0
            result = run_busy(
                config,
                root,
                dovecot,
                folder,
                reports=args.reports,
                messages=args.messages,
                slow_relay=lambda: relay.slow("DATA", 0.05),
                timeout=900,
            )
        finally:
            if pg is not None:
                pg.stop()
        result.sent_message_ids = [
            str(message_from_bytes(m.content)["Message-ID"]) for m in relay.messages if DWP in m.rcpt_tos
        ]
    backend = "PostgreSQL" if args.postgres else "SQLite"
    how = (
        "each command in its own process"
        if args.in_process
        else "commands served by the daemon's command server"
    )
    print(result.table(f"{backend}, {args.reports} reports + {args.messages} messages, {how}"))
    worst = max(result.timings, key=lambda t: t.seconds)
    locked = sum("database is locked" in t.err for t in result.timings)
    tracebacks = sum("Traceback" in t.err for t in result.timings)
    once = len(result.sent_message_ids) == len(set(result.sent_message_ids)) == result.submissions
    print(
        f"max {worst.seconds:.2f} s ({worst.command}; bar {BAR_SECONDS} s), locked {locked}, "
        f"tracebacks {tracebacks}, each report sent once: {once}"
    )
    return 0 if worst.seconds < BAR_SECONDS and not locked and not tracebacks and once else 1


if __name__ == "__main__":
    sys.exit(main())
