"""The rig for the IMAP fault matrix (tests/integration/test_imap_faults.py).

A real daemon configuration (relay, gpg, SQLite store) whose `[imap]` goes to a real Dovecot through a
FaultProxy; two reports sent to DWP by the real outbox; the real `InboxWatcher.run` loop in a thread of
its own. The figures of each row come from the store, the mailbox and the log, never from the watcher's
own account of what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme

from mailroom.daemon.app import build
from mailroom.daemon.runners import Backoff, Heartbeat
from mailroom.daemon.watcher import InboxWatcher
from mailroom.edges.configfile import load_settings
from mailroom.edges.imap import header_message_id
from mailroom.harness import dwp
from mailroom.harness.dovecot import ALICE, DOVEADM, Dovecot
from tests.conftest import Env
from tests.support import pdfs
from tests.support.faultproxy import FaultProxy
from tests.support.smtpd import SmtpServer

AUTHSERV = "mx.provider.example"
CASE = "MH-100001"
_PEM_END = "-----END CERTIFICATE-----\n"


class FaultDovecot(Dovecot):
    """Dovecot with the ACL plugin and one global ACL file, read afresh on every check (cache_secs=0),
    so a test can take a right away from a folder in a running server, as an administrator would."""

    @property
    def acl_file(self) -> Path:
        return self.root / "global-acl"

    def _config_text(self, mail_user: str, mail_group: str, users: Path) -> str:
        self.acl_file.write_text("")
        self.acl_file.chmod(0o644)
        return super()._config_text(mail_user, mail_group, users) + (
            f"mail_plugins = $mail_plugins acl\nplugin {{\n  acl = vfile:{self.acl_file}:cache_secs=0\n}}\n"
        )

    def deny_insert(self, folder: str) -> None:
        """The owner keeps every right on `folder` except `i`: COPY, MOVE and APPEND into it are refused."""
        self.acl_file.write_text(f"{folder} owner lrwstekxa\n")

    def allow_all(self) -> None:
        self.acl_file.write_text("")

    def reload(self) -> None:
        """SIGHUP by doveadm: new logins use the configuration (and certificate files) as they are now."""
        command = [str(DOVEADM), "-c", str(self.config_file), "reload"]
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=10)

    def certificate(self) -> tuple[bytes, bytes]:
        return (self.root / "server.pem").read_bytes(), (self.root / "server.key").read_bytes()

    def use_certificate(self, chain: bytes, key: bytes) -> None:
        """Replace the certificate and reload; returns once IMAPS shows the new one and LMTP answers."""
        (self.root / "server.pem").write_bytes(chain)
        (self.root / "server.key").write_bytes(key)
        self.reload()
        expected = ssl.PEM_cert_to_DER_cert(chain.decode().split("-----END CERTIFICATE-----")[0] + _PEM_END)
        eventually(lambda: self._serving() == expected, "Dovecot serving the new certificate")

    def _serving(self) -> bytes | None:
        """The certificate IMAPS presents now (not verified: this is the test looking), once LMTP answers."""
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with smtplib.LMTP(self.host, self.lmtp_port, timeout=2) as lmtp:
                lmtp.noop()
            with (
                socket.create_connection((self.host, self.imaps_port), timeout=2) as raw,
                context.wrap_socket(raw) as tls,
            ):
                return tls.getpeercert(binary_form=True)
        except (OSError, smtplib.SMTPException):
            return None

    def use_foreign_certificate(self) -> None:
        """A certificate for the right names, issued by a CA the client does not trust."""
        issued = trustme.CA().issue_cert("localhost", self.host)
        self.use_certificate(
            b"".join(b.bytes() for b in issued.cert_chain_pems), issued.private_key_pem.bytes()
        )

    def log_lines(self, *words: str) -> int:
        """Lines of Dovecot's log holding every one of `words`."""
        if not self.log_file.exists():
            return 0
        lines = self.log_file.read_text(errors="replace").splitlines()
        return sum(all(word in line for word in words) for line in lines)


class RecordedBackoff(Backoff):
    """The product's Backoff, unchanged, remembering each delay it handed out."""

    def __init__(self, *, initial: float, cap: float) -> None:
        super().__init__(random.Random(12), initial=initial, cap=cap)
        self.delays: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay


def eventually(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait for a condition with a deadline (the deadline is a safety net, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class RunningWatcher:
    """`InboxWatcher.run` (the daemon's inbox runner) on an event loop in a thread of its own."""

    def __init__(self, watcher: InboxWatcher) -> None:
        self.watcher = watcher
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="inbox-watcher", daemon=True)
        self._thread.start()
        self._started.wait(5)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self.watcher.run(self._stop, Heartbeat())

        try:
            asyncio.run(run())
        except BaseException as error:  # handed to the test by stop()
            self._error = error

    def idling(self) -> bool:
        """The watcher sits in IDLE now (imapclient keeps the IDLE tag until DONE)."""
        client = self.watcher.mailbox._client  # the real protocol state, not a guess
        return client is not None and getattr(client, "_idle_tag", None) is not None

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.watcher.stop()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the watcher did not stop within 10 s"
        if self._error is not None:
            raise self._error


@dataclass
class Row:
    """One line of the fault matrix."""

    fault: str
    lost: int
    twice: int
    state: str
    outage_lines: int
    recovery_lines: int
    attempts: int = 0  # failed attempts the recovery lines report ("after N failed attempts")


@dataclass
class Rig:
    """One row's daemon, mailbox folder, proxy and the two reports the daemon sent to DWP."""

    env: Env
    relay: SmtpServer
    server: FaultDovecot
    proxy: FaultProxy
    folder: str
    reports: list[EmailMessage] = field(default_factory=list)
    watcher: InboxWatcher | None = None
    notices: dict[str, str] = field(default_factory=dict)  # Message-ID -> the effect it must have once

    @property
    def processed(self) -> str:
        return f"{self.folder}/Processed"

    def send_reports(self) -> None:
        for report_type in ("support-plan", "six-month-report"):
            path = self.env.root / f"{uuid.uuid4().hex}.pdf"
            path.write_bytes(pdfs.arial_12_report(report_type=report_type))
            assert self.env.run("submit", str(path), "--case", CASE, "--type", report_type).code == 0
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            assert self.env.run("run", "--once").code == 0
        finally:
            # `run` points the root logger at the stderr of the moment; the watcher logs after that is gone.
            root.handlers[:], root.level = handlers, level
        self.reports = [
            message_from_bytes(m.content, policy=policy.default)  # type: ignore[misc]
            for m in self.relay.messages
            if dwp.DWP_INBOX in m.rcpt_tos
        ]
        assert len(self.reports) == 2

    def make_watcher(self, backoff: Backoff) -> InboxWatcher:
        parts = build(load_settings(self.env.config))
        assert parts.watcher is not None
        self.watcher = InboxWatcher(parts.watcher.mailbox, parts.inbox, parts.engine, backoff=backoff)
        return self.watcher

    @contextlib.contextmanager
    def running(self, backoff: Backoff) -> Iterator[RunningWatcher]:
        runner = RunningWatcher(self.make_watcher(backoff))
        try:
            yield runner
        finally:
            runner.stop()

    # -- DWP's replies ---------------------------------------------------------------------------------

    def ack(self, report: int) -> EmailMessage:
        message = dwp.acknowledgement(
            self.reports[report], now=datetime.now().astimezone(), authserv_id=AUTHSERV
        )
        self.notices[str(message["Message-ID"])] = "acknowledged"
        return message

    def rejection(self, report: int, *, attachment: int = 0) -> EmailMessage:
        message = dwp.rejection(
            self.reports[report],
            ["employment-status-missing"],
            now=datetime.now().astimezone(),
            authserv_id=AUTHSERV,
            case_ref=CASE,
        )
        if attachment:
            # DWP returns the report it could not accept: a large message, as FETCH cuts need.
            message.add_attachment(
                random.Random(7).randbytes(attachment),
                maintype="application",
                subtype="pdf",
                filename="r.pdf",
            )
        self.notices[str(message["Message-ID"])] = "rejected"
        return message

    def deliver(self, message: EmailMessage | bytes) -> None:
        """By LMTP straight into the test's folder, as DWP's mail arrives (not through the proxy)."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        self.server.deliver_lmtp(ALICE, raw, folder=self.folder)

    # -- what is true now ------------------------------------------------------------------------------

    def db(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.env.db_path) as connection:
            return connection.execute(sql, args).fetchall()

    def rows_for(self, message_id: str) -> int:
        return int(self.db("SELECT count(*) FROM inbound_messages WHERE message_id = ?", message_id)[0][0])

    def effects_for(self, message_id: str) -> int:
        """How often the notice's effect (acknowledged / rejected) was applied to its submission."""
        rows = self.db("SELECT submission_id FROM inbound_messages WHERE message_id = ?", message_id)
        submissions = {row[0] for row in rows if row[0] is not None}
        action = self.notices[message_id]
        return sum(
            int(
                self.db(
                    "SELECT count(*) FROM audit_events"
                    " WHERE entity = 'submission' AND entity_id = ? AND action = ?",
                    submission,
                    action,
                )[0][0]
            )
            for submission in submissions
        )

    def clocks_for(self, message_id: str) -> int:
        """Correction clocks of a rejection's submission (one per rejection); 1 for an acknowledgement."""
        if self.notices[message_id] != "rejected":
            return 1
        rows = self.db("SELECT submission_id FROM inbound_messages WHERE message_id = ?", message_id)
        return sum(
            int(
                self.db(
                    "SELECT count(*) FROM clocks WHERE submission_id = ? AND kind = 'correction'", row[0]
                )[0][0]
            )
            for row in {r for r in rows if r[0] is not None}
        )

    def applied(self, message_id: str) -> bool:
        return self.effects_for(message_id) >= 1

    def processed_ids(self) -> set[str]:
        """The Message-IDs of what is in the processed folder now."""
        with self.server.session(ALICE) as client:
            if not client.folder_exists(self.processed):
                return set()
            client.select_folder(self.processed, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
        return {str(header_message_id(item)) for item in fetched.values()}

    def count(self, folder: str) -> int:
        with self.server.session(ALICE) as client:
            if not client.folder_exists(folder):
                return -1
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def folder_state(self) -> tuple[int, int]:
        """(UIDVALIDITY, highest UID ever given) of the inbox folder, by a fresh SELECT."""
        with self.server.session(ALICE) as client:
            info = client.select_folder(self.folder, readonly=True)
            return int(info[b"UIDVALIDITY"]), int(info[b"UIDNEXT"]) - 1

    def cursor(self) -> tuple[int, int] | None:
        rows = self.db("SELECT uidvalidity, last_uid FROM folder_cursors")
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def settled(self, *, inbox: int, processed: int) -> bool:
        """Every notice applied, the folders as expected and the cursor at the folder's last UID."""
        return (
            all(self.applied(mid) for mid in self.notices)
            and self.count(self.folder) == inbox
            and self.count(self.processed) == processed
            and self.cursor() == self.folder_state()
        )

    def row(self, fault: str, records: list[logging.LogRecord], *, inbox: int, processed: int) -> Row:
        """The row's figures: counted from the store, the server and the log records of the row."""
        counts = [(self.rows_for(m), self.effects_for(m), self.clocks_for(m)) for m in self.notices]
        lost = sum(min(figures) == 0 for figures in counts)
        twice = sum(max(figures) > 1 for figures in counts)
        stored = len(list((self.env.root / "documents" / "inbound").iterdir()))
        [(rows,)] = self.db("SELECT count(*) FROM inbound_messages")
        cursor, where = self.cursor(), self.folder_state()
        state_ok = (
            self.count(self.folder) == inbox
            and self.count(self.processed) == processed
            and cursor == where
            and stored == rows
            and self.processed_ids() == set(self.notices)  # each notice filed, nothing else
        )
        state = (
            f"{'ok' if state_ok else 'WRONG'}: inbox {self.count(self.folder)}, processed "
            f"{self.count(self.processed)}, cursor {'= last UID' if cursor == where else cursor}, "
            f"{stored}/{rows} raw files"
        )
        reported = (re.search(r"after (\d+) failed attempts", r.getMessage()) for r in records)
        attempts = sum(int(m.group(1)) for m in reported if m)
        return Row(fault, lost, twice, state, *outage_lines(records), attempts)


MATRIX: list[Row] = []  # filled by the fault tests, printed at the end of the session (conftest.py)
COLUMNS = (
    "fault",
    "notices lost",
    "applied twice",
    "state",
    "outage log lines",
    "recovery lines",
    "failed attempts",
)


def matrix_table(rows: list[Row]) -> list[str]:
    """The rows as a Markdown table, as docs/imap.md shows it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = (r.fault, r.lost, r.twice, r.state, r.outage_lines, r.recovery_lines, r.attempts)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def outage_lines(records: list[logging.LogRecord]) -> tuple[int, int]:
    """(WARNING lines that an IMAP outage started, INFO lines that it ended)."""
    started = [r for r in records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()]
    ended = [r for r in records if r.levelno == logging.INFO and "available again" in r.getMessage()]
    return len(started), len(ended)
