"""Issue 12 part 6: disk and key faults through the real code paths.

Documents folder full (a 1 MB tmpfs the test mounts), gpg home missing its key (the keyring moved away and
back), database file read-only (its folder on a tmpfs remounted read-only: root ignores file modes, so a
chmod would prove nothing here; EROFS stops root too). For each: `mailroom submit` refuses with one line
on stderr naming the fault, exits non-zero and changes nothing; a real daemon (`mailroom run`, a child
process) logs the outage once, keeps its state, and carries on by itself when the fault is cleared.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.integration.conftest import unavailable
from tests.support import pdfs
from tests.support.dovecot import ServerUnavailable
from tests.support.gpg import GpgHome, kill_agent
from tests.support.mounts import SmallFs
from tests.support.smtpd import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DWP = "accesstowork.mhss@dwp.gov.uk"
CASE = "MH-100001"
WAIT = 60.0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[str], SmallFs]]:
    mounted: list[SmallFs] = []

    def mount(name: str) -> SmallFs:
        try:
            fs = SmallFs(tmp_path / name).__enter__()
        except ServerUnavailable as error:
            unavailable(error)
        mounted.append(fs)
        return fs

    try:
        yield mount
    finally:
        for fs in reversed(mounted):
            fs.__exit__(None, None, None)


class Daemon:
    """`python -m mailroom run` as a child process, its log in a file."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.log = env.root / "daemon.log"
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailroom", "--config", str(env.config), "run"],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self, level: str, needle: str) -> list[str]:
        return [line for line in self.text().splitlines() if f" {level} " in line and needle in line]

    def problems(self) -> list[str]:
        """ERROR lines and crashed tasks (tracebacks at DEBUG, with `exc_info`, are the repeats' detail)."""
        bad = (" ERROR ", " CRITICAL ", "Task exception was never retrieved")
        return [line for line in self.text().splitlines() if any(b in line for b in bad)]

    def wait_for(self, what: str, check: Callable[[], object], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"waiting for {what}: daemon rc={self.proc.poll()}\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def sqlite_rows(env: Env, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(env.db_path, timeout=30) as db:
        return list(db.execute(query).fetchall())


def states(env: Env) -> Counter[str]:
    return Counter(str(s) for (s,) in sqlite_rows(env, "SELECT state FROM submissions"))


def sent_to_dwp(relay: SmtpServer) -> list[str]:
    return [str(message_from_bytes(m.content)["Message-ID"]) for m in relay.messages if DWP in m.rcpt_tos]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def report(env: Env, name: str = "report.pdf") -> Path:
    path = env.root / name
    path.write_bytes(pdfs.arial_12_report())
    return path


def submit(env: Env) -> tuple[int, str]:
    result = env.run("submit", str(report(env)), "--case", CASE, "--type", "support-plan")
    return result.code, result.err


def test_documents_folder_full(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, small_fs: Callable[[str], SmallFs]
) -> None:
    fs = small_fs("docfs")
    spool = fs.path.parent / "spool"
    env = make_daemon_env(
        store={"documents_dir": str(fs.path / "documents")},
        intake={"spool_dir": str(spool)},
        outbox={"poll_seconds": 0.2},
        daemon={"test_mode": True, "log_level": "DEBUG"},
    )
    assert env.run("case", "add", CASE).code == 0
    assert submit(env)[0] == 0  # queued before the fault: the daemon must still send it
    fs.fill()
    before = env.snapshot()
    code, err = submit(env)
    line = one_line(err)
    assert code == 1 and "documents folder" in line and "No space left on device" in line, err
    assert env.snapshot() == before

    spool.mkdir(mode=0o700)
    (spool / f"{CASE}_support-plan.pdf").write_bytes(pdfs.arial_12_report())
    daemon = Daemon(env)
    try:
        daemon.wait_for("the queued report to be sent", lambda: len(sent_to_dwp(relay)) == 1)
        # Two attempts at the spool file (the first WARNING, the repeat at DEBUG), and it stays claimed.
        daemon.wait_for(
            "a second intake attempt", lambda: len(daemon.lines("DEBUG", "intake unavailable")) >= 1
        )
        assert not list((spool / "failed").glob("*.pdf")), "a disk fault must not fail the spool file"
        assert list((spool / ".claimed").glob("*.pdf"))
        fs.free()
        daemon.wait_for("the spool file's report to be sent", lambda: len(sent_to_dwp(relay)) == 2)
        daemon.wait_for("every submission sent", lambda: states(env) == Counter({"sent": 2}))
    finally:
        assert daemon.stop() == 0, daemon.text()[-3000:]
    warnings = daemon.lines("WARNING", "No space left on device")
    assert len(warnings) == 1, warnings
    assert "intake unavailable: cannot store the report in the documents folder" in warnings[0]
    assert daemon.lines("INFO", "intake available again after")
    assert daemon.problems() == []
    sent = sent_to_dwp(relay)
    assert len(sent) == len(set(sent)) == 2
    assert set(sent) == {str(m) for (m,) in sqlite_rows(env, "SELECT message_id FROM submissions")}


def keyring_away(home: Path, parked: Path) -> None:
    """The gpg home without its keys: the public keyring and the secret keys moved out of it."""
    parked.mkdir(mode=0o700)
    for name in ("pubring.kbx", "pubring.kbx~", "trustdb.gpg", "private-keys-v1.d"):
        if (home / name).exists():
            shutil.move(str(home / name), str(parked / name))
    kill_agent(home)


def keyring_back(home: Path, parked: Path) -> None:
    for item in parked.iterdir():
        shutil.move(str(item), str(home / item.name))
    kill_agent(home)


@pytest.fixture
def own_gpg(tmp_path: Path) -> Iterator[tuple[GpgHome, str]]:
    with GpgHome(path=Path(f"/tmp/gk{os.getpid()}{tmp_path.name[-6:]}")) as home:
        yield home, home.generate_key("documents@provider.example").fingerprint


def test_gpg_home_missing_its_key(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, own_gpg: tuple[GpgHome, str], tmp_path: Path
) -> None:
    home, fingerprint = own_gpg
    spool = tmp_path / "spool"
    env = make_daemon_env(
        gpg={"home": str(home.path), "recipients": [fingerprint], "encrypt_at_rest": True},
        intake={"spool_dir": str(spool)},
        outbox={"poll_seconds": 0.2},
        daemon={"test_mode": True, "log_level": "DEBUG"},
    )
    assert env.run("case", "add", CASE).code == 0
    parked = env.root / "parked-keys"
    daemon = Daemon(env)
    try:
        daemon.wait_for("the daemon to start", lambda: "mailroom running" in daemon.text())
        keyring_away(home.path, parked)
        before = env.snapshot()
        code, err = submit(env)
        line = one_line(err)
        assert code == 78 and "[gpg]" in line and "no such public key" in line, err
        assert env.snapshot() == before

        (spool / f"{CASE}_support-plan.pdf").write_bytes(pdfs.arial_12_report())
        daemon.wait_for(
            "a second intake attempt", lambda: len(daemon.lines("DEBUG", "intake unavailable")) >= 1
        )
        assert not list((spool / "failed").glob("*.pdf"))
        assert states(env) == Counter()
        keyring_back(home.path, parked)
        daemon.wait_for("the spool file's report to be sent", lambda: len(sent_to_dwp(relay)) == 1)
        daemon.wait_for("the submission sent", lambda: states(env) == Counter({"sent": 1}))
    finally:
        assert daemon.stop() == 0, daemon.text()[-3000:]
    warnings = daemon.lines("WARNING", "gpg could not encrypt")
    assert len(warnings) == 1 and "intake unavailable" in warnings[0], warnings
    assert daemon.lines("WARNING", "gnupg:") == []  # python-gnupg's own repeats of the same fault
    assert daemon.lines("INFO", "intake available again after")
    assert daemon.problems() == []
    sent = sent_to_dwp(relay)
    assert len(sent) == len(set(sent)) == 1


def test_secret_key_missing_while_reports_wait_in_the_outbox(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, own_gpg: tuple[GpgHome, str]
) -> None:
    home, fingerprint = own_gpg
    env = make_daemon_env(
        gpg={"home": str(home.path), "recipients": [fingerprint], "encrypt_at_rest": True},
        # Each report waits its own backoff, as after any temporary failure: 3 s here, 5 min by default.
        outbox={"poll_seconds": 0.2, "retry_initial_minutes": 0.05},
    )
    assert env.run("case", "add", CASE).code == 0
    for _ in range(3):
        assert submit(env)[0] == 0
    ids = [str(i) for (i,) in sqlite_rows(env, "SELECT id FROM submissions")]
    for number in ids:
        assert env.run("queue", "hold", number).code == 0
    secret, parked = home.path / "private-keys-v1.d", env.root / "parked-secret-keys"
    daemon = Daemon(env)
    try:
        daemon.wait_for("the daemon to start", lambda: "mailroom running" in daemon.text())
        shutil.move(str(secret), str(parked))
        kill_agent(home.path)
        for number in ids:  # the public key is there: the CLI works, encrypting needs no secret key
            assert env.run("queue", "release", number).code == 0
        daemon.wait_for("the outbox to meet the fault", lambda: states(env)["deferred"] == 3)
        # gpg-agent made a new, empty private-keys-v1.d meanwhile: moved onto it, the keys would land inside.
        shutil.rmtree(secret, ignore_errors=True)
        shutil.move(str(parked), str(secret))
        kill_agent(home.path)
        daemon.wait_for("the reports to be sent", lambda: len(sent_to_dwp(relay)) == 3, timeout=20)
    finally:
        daemon.stop()
    assert len(daemon.lines("WARNING", "decrypt")) == 1
    assert states(env) == Counter({"sent": 3})


def snapshot_of(database: Path, documents: Path) -> tuple[list[str], list[str]]:
    """Env.snapshot for a database outside the test's root folder."""
    with contextlib.closing(sqlite3.connect(database)) as db:  # closed: a remount needs no open file
        rows = [line for line in db.iterdump() if line.startswith("INSERT")]
    return rows, sorted(str(p) for p in documents.rglob("*"))


def test_database_file_read_only(
    make_daemon_env: Callable[..., Env], relay: SmtpServer, small_fs: Callable[[str], SmallFs]
) -> None:
    fs = small_fs("dbfs")
    database = fs.path / "mailroom.db"
    env = make_daemon_env(
        store={"url": f"sqlite:///{database}"},
        outbox={"poll_seconds": 0.2},
        daemon={"test_mode": True, "log_level": "DEBUG"},
    )
    documents = env.root / "documents"
    assert env.run("case", "add", CASE).code == 0
    assert submit(env)[0] == 0  # queued before the fault
    before = snapshot_of(database, documents)
    fs.read_only(True)  # nothing holds the file open now: the CLI closed its connections
    code, err = submit(env)
    line = one_line(err)
    assert code == 1 and "cannot use the database" in line and "read-only file system" in line, err
    queue = env.run("queue")
    assert queue.code == 1 and "read-only file system" in one_line(queue.err)
    fs.read_only(False)
    assert snapshot_of(database, documents) == before  # the refused submit left no row and no document
    fs.read_only(True)

    daemon = Daemon(env)
    try:
        daemon.wait_for("a second attempt at the database", lambda: daemon.lines("DEBUG", "unavailable"))
        fs.read_only(False)
        daemon.wait_for("the queued report to be sent", lambda: len(sent_to_dwp(relay)) == 1)
        daemon.wait_for("the submission sent", lambda: states_at(database) == Counter({"sent": 1}))
    finally:
        with contextlib.suppress(RuntimeError):
            fs.read_only(False)
        assert daemon.stop() == 0, daemon.text()[-3000:]
    warnings = daemon.lines("WARNING", "read-only file system")
    assert len(warnings) == 1 and f"database {database} unavailable" in warnings[0], warnings
    assert daemon.lines("INFO", f"database {database} available again after")
    assert daemon.problems() == []
    assert len(sent_to_dwp(relay)) == 1


def states_at(database: Path) -> Counter[str]:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db:
        return Counter(str(s) for (s,) in db.execute("SELECT state FROM submissions"))
