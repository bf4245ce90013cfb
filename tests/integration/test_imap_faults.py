"""Issue 12, part 3: the IMAP fault matrix. The daemon's real inbox runner (InboxWatcher.run with the real
Inbox, gpg and SQLite store) reads a real Dovecot through a FaultProxy, and each row breaks one thing:

    1 a connection cut in the middle of a ~4 MB FETCH     6 UIDVALIDITY reset, old and new mail in the folder
    2 a connection cut during IDLE                        7 the same notice delivered more than once
    3 the server restarted while we idle                  8 a server that stops answering mid-FETCH
    4 a MOVE answered NO (a real Dovecot ACL)             9 a certificate that does not verify
    5 the processed folder deleted under us

Every row asserts: no notice lost, none applied twice (one inbound row and one effect per notice), the
mailbox and cursor right afterwards, no orphan raw file, and exactly one WARNING per outage and one INFO
on recovery (OutageLog). The figures are collected into the matrix printed at the end of the session and
copied into docs/imap.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Env
from tests.integration.conftest import own_folders, unavailable
from tests.support.dovecot import ALICE, ServerUnavailable
from tests.support.faultproxy import FaultProxy
from tests.support.imapfaults import (
    CASE,
    MATRIX,
    FaultDovecot,
    RecordedBackoff,
    Rig,
    Row,
    eventually,
    outage_lines,
)
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration

TIMEOUT = 1.0  # [imap] timeout_seconds: every IMAP call, connect and TLS handshake included
# How Dovecot logs a connection whose client refused its certificate: no auth attempt, TLS alert 48.
REFUSED_TLS = ("no auth attempts", "TLS handshaking", "alert unknown ca")
BIG = 3 * 1024 * 1024  # the attachment of the large rejection: about 4 MB on the wire in base64


@pytest.fixture(scope="module")
def server() -> Iterator[FaultDovecot]:
    """One Dovecot for the module (rows take it away and give it back; each has its own folders)."""
    try:
        instance = FaultDovecot()
    except ServerUnavailable as error:
        unavailable(error)
    with instance:
        yield instance


@pytest.fixture
def proxy(server: FaultDovecot) -> Iterator[FaultProxy]:
    with FaultProxy(server.host, server.imaps_port) as running:
        yield running


@pytest.fixture
def rig(
    make_daemon_env: Callable[..., Env],
    relay: SmtpServer,
    server: FaultDovecot,
    proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Rig]:
    folder, folders = own_folders(server, "F")
    env = make_daemon_env(mailbox=server, imap={"port": proxy.port, "timeout_seconds": TIMEOUT, **folders})
    assert env.run("case", "add", CASE).code == 0
    setup = Rig(env, relay, server, proxy, folder)
    setup.send_reports()
    caplog.set_level(logging.INFO)
    caplog.clear()
    yield setup
    server.allow_all()


def backoff() -> RecordedBackoff:
    return RecordedBackoff(initial=0.05, cap=0.2)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def finish(
    rig: Rig,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    *,
    inbox: int,
    processed: int,
    outages: int = 1,
) -> Row:
    """Wait until the watcher has caught up, then measure and assert the row's outcome."""
    eventually(lambda: rig.settled(inbox=inbox, processed=processed), f"{fault}: settled")
    eventually(lambda: outage_lines(caplog.records)[1] == outages, f"{fault}: recovery logged")
    row = rig.row(fault, list(caplog.records), inbox=inbox, processed=processed)
    MATRIX.append(row)
    assert (row.lost, row.twice) == (0, 0), row
    assert row.state.startswith("ok"), row
    assert (row.outage_lines, row.recovery_lines) == (outages, outages), (row, warnings(caplog))
    return row


def test_1_a_cut_in_the_middle_of_a_large_fetch(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with rig.running(backoff()) as watcher:
        rig.deliver(rig.ack(0))
        eventually(lambda: rig.settled(inbox=0, processed=1), "the acknowledgement filed")
        eventually(watcher.idling, "idling")
        rig.proxy.cut_after(1_000_000, "down", new_connections=False)  # a quarter of the way through
        rig.deliver(rig.rejection(1, attachment=BIG))
        rig.proxy.wait_for_cuts(1)
        finish(rig, caplog, "1. cut after 1 MB of a ~4 MB FETCH", inbox=0, processed=2)
    [warning] = warnings(caplog)
    assert "FETCH" in warning and "unavailable" in warning


def test_2_a_cut_during_idle(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with rig.running(backoff()) as watcher:
        rig.deliver(rig.ack(0))
        eventually(lambda: rig.settled(inbox=0, processed=1), "the acknowledgement filed")
        eventually(watcher.idling, "idling")
        connections = rig.proxy.connections
        rig.proxy.cut_all()
        rig.deliver(rig.rejection(1))  # while the connection is down
        finish(rig, caplog, "2. connection cut during IDLE", inbox=0, processed=2)
    assert rig.proxy.connections > connections
    assert len(warnings(caplog)) == 1


def test_3_the_server_restarted_while_we_idle(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with rig.running(backoff()) as watcher:
        rig.deliver(rig.ack(0))
        eventually(lambda: rig.settled(inbox=0, processed=1), "the acknowledgement filed")
        eventually(watcher.idling, "idling")
        rig.server.restart()  # every Dovecot process killed at once, then started on the same ports
        rig.deliver(rig.rejection(1))
        finish(rig, caplog, "3. server restarted during IDLE", inbox=0, processed=2)
    assert len(warnings(caplog)) == 1


def test_4_a_move_answered_no(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with rig.running(backoff()) as watcher:
        rig.deliver(rig.ack(0))
        eventually(lambda: rig.settled(inbox=0, processed=1), "the acknowledgement filed")
        eventually(watcher.idling, "idling")
        rig.server.deny_insert(rig.processed)  # Dovecot answers MOVE with NO [NOPERM]
        connections = rig.proxy.connections
        rejection = rig.rejection(1)
        rig.deliver(rejection)
        # Applied once, then the move is refused again on every reconnect (refile) while the ACL stands.
        eventually(lambda: rig.applied(str(rejection["Message-ID"])), "the rejection applied")
        rig.proxy.wait_for_connections(connections + 3)
        assert rig.count(rig.folder) == 1
        rig.server.allow_all()
        finish(rig, caplog, "4. MOVE answered NO (ACL)", inbox=0, processed=2)
    assert len(warnings(caplog)) == 1 and "NOPERM" in warnings(caplog)[0]


def test_5_the_processed_folder_deleted_under_us(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with rig.running(backoff()) as watcher:
        eventually(watcher.idling, "idling")
        rig.server.delete_folder(ALICE, rig.processed)
        rig.deliver(rig.ack(0))
        rig.deliver(rig.rejection(1))
        finish(rig, caplog, "5. processed folder deleted", inbox=0, processed=2)
    assert len(warnings(caplog)) == 1


def test_6_uidvalidity_reset_with_old_and_new_mail(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    ack = rig.ack(0)
    with rig.running(backoff()) as watcher:
        rig.deliver(ack)
        eventually(lambda: rig.settled(inbox=0, processed=1), "the acknowledgement filed")
        eventually(watcher.idling, "idling")
        old_uidvalidity, _ = rig.folder_state()
        rig.server.set_uidvalidity(ALICE, rig.folder, old_uidvalidity + 1000)
        rig.server.append(ALICE, rig.folder, ack.as_bytes())  # the applied one again, as from a backup
        rig.deliver(rig.rejection(1))  # and a new one
        # Dovecot ends the idling session with BYE (an outage, logged once); the catch-up on the new
        # connection re-reads the folder from UID 1.
        finish(rig, caplog, "6. UIDVALIDITY reset (old + new)", inbox=0, processed=3)
    assert rig.cursor() == (old_uidvalidity + 1000, 3)
    bye, changed = warnings(caplog)
    assert "BYE" in bye and "inconsistent" in bye
    assert "UIDVALIDITY changed" in changed


def test_7_the_same_notice_delivered_twice(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    ack = rig.ack(0).as_bytes()
    with rig.running(backoff()):
        rig.deliver(ack)  # LMTP adds its own trace headers: same Message-ID, other bytes, two UIDs
        rig.deliver(ack)
        rig.deliver(rig.rejection(1))
        eventually(lambda: rig.settled(inbox=0, processed=3), "all three filed")
        rig.deliver(ack)  # once more, in a later catch-up
        finish(rig, caplog, "7. same notice delivered 3 times", inbox=0, processed=4, outages=0)
    assert rig.db("SELECT count(*) FROM inbound_messages") == [(2,)]
    assert warnings(caplog) == []


def test_8_a_server_that_stops_answering(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    delays = backoff()
    with rig.running(delays) as watcher:
        rig.deliver(rig.ack(0))
        eventually(lambda: rig.settled(inbox=0, processed=1), "the acknowledgement filed")
        eventually(watcher.idling, "idling")
        rig.proxy.stall_after(300_000, "down")  # mid-FETCH, then nothing more on any connection
        rig.deliver(rig.rejection(1, attachment=BIG))
        rig.proxy.wait_for_stall()
        # Each attempt (the FETCH, then every reconnect's TLS handshake) ends at its timeout.
        eventually(lambda: len(delays.delays) >= 4, "4 timed-out attempts", timeout=4 * (TIMEOUT + 0.2) + 5)
        rig.proxy.stall(False)
        finish(rig, caplog, "8. server stops answering (stall)", inbox=0, processed=2)
    ceilings = [0.05, 0.1, 0.2, 0.2]
    assert all(c / 2 <= d <= c for d, c in zip(delays.delays, ceilings, strict=False)), delays.delays
    assert max(delays.delays) <= 0.2
    [warning] = warnings(caplog)
    assert f"no answer within {TIMEOUT:g} s" in warning


def test_9_a_certificate_that_does_not_verify(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    good = rig.server.certificate()
    try:
        with rig.running(backoff()) as watcher:
            rig.deliver(rig.ack(0))
            eventually(lambda: rig.settled(inbox=0, processed=1), "the acknowledgement filed")
            eventually(watcher.idling, "idling")
            rig.server.use_foreign_certificate()
            logins, refused = rig.server.log_lines("Login: user=<"), rig.server.log_lines(*REFUSED_TLS)
            connections = rig.proxy.connections
            rig.proxy.cut_all()  # the next connection meets the new certificate
            rig.deliver(rig.rejection(1))
            rig.proxy.wait_for_connections(connections + 3)
            # Dovecot saw each attempt end in the TLS handshake with our alert, and no login: none was sent.
            eventually(lambda: rig.server.log_lines(*REFUSED_TLS) >= refused + 3, "3 refusals in the log")
            assert rig.server.log_lines("Login: user=<") == logins
            assert rig.server.log_lines("auth failed") == rig.server.log_lines("Aborted login") == 0
            rig.server.use_certificate(*good)
            # Two outages, each logged once: the dropped connection, then the certificate (its own
            # OutageLog, or it would hide as a DEBUG line behind the first).
            finish(rig, caplog, "9. certificate replaced, connection cut", inbox=0, processed=2, outages=2)
    finally:
        rig.server.use_certificate(*good)
    dropped, untrusted = warnings(caplog)
    assert "certificate" not in dropped
    assert "certificate verification unavailable" in untrusted and "not trusted" in untrusted
