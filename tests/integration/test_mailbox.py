"""The IMAP edge against a real Dovecot on 127.0.0.1: TLS, login, folders, UID catch-up, IDLE, moves,
restarts and UIDVALIDITY changes. Mail arrives by LMTP (as from an MTA) or APPEND.

One Dovecot serves the module; every test gets its own folders, so tests do not see each other's mail.
Restart tests start their own instance because they take the server away.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import pytest

from mailroom.edges.imap import (
    ImapConnection,
    ImapOptions,
    MailboxAuthError,
    MailboxError,
    MailboxUnavailable,
    UidValidityChanged,
)
from mailroom.edges.mailbox import Mailbox
from tests.integration.conftest import unavailable
from tests.support.dovecot import ALICE, Dovecot, ServerUnavailable

pytestmark = pytest.mark.integration

T = TypeVar("T")
IDLE_WAKE_LIMIT = 1.5  # Dovecot batches inotify events for 0.5 s (harness.md §2); allow a loaded machine


# -- fixtures (Dovecot itself is the session fixture in conftest.py) --------------------------------------


@pytest.fixture
def options(dovecot: Dovecot) -> ImapOptions:
    """IMAPS as alice, with an inbox and processed/quarantine folders of this test's own."""
    inbox = f"T-{uuid.uuid4().hex[:10]}"
    with dovecot.session(ALICE) as client:
        client.create_folder(inbox)
    return imap_options(dovecot, inbox)


@pytest.fixture
def mailbox(options: ImapOptions) -> Iterator[Mailbox]:
    box = Mailbox(options)
    box.connect()
    yield box
    box.close()


# -- helpers -------------------------------------------------------------------------------------------------


def imap_options(dovecot: Dovecot, inbox: str = "INBOX", **changes: Any) -> ImapOptions:
    base = ImapOptions(
        host=dovecot.host,
        port=dovecot.imaps_port,
        security="tls",
        username=ALICE,
        password=dovecot.password(ALICE),
        ca_file=dovecot.ca_file,
        timeout=5,
        inbox_folder=inbox,
        processed_folder=f"{inbox}/Processed",
        quarantine_folder=f"{inbox}/Quarantine",
    )
    return replace(base, **changes)


def notice(subject: str, message_id: str | None = None, **headers: str) -> bytes:
    """A small DWP-style automated response (fictional; no personal data)."""
    message_id = message_id or "<{}@dwp.example>".format(subject.replace(" ", "-"))
    lines = [
        "From: DWP Access to Work <accesstowork.mhss@dwp.gov.uk>",
        "To: reports@provider.example",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        "Date: Mon, 02 Mar 2026 10:00:00 +0000",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        "",
        "Thank you for your email. This is an automated response.",
        "",
    ]
    return "\r\n".join(lines).encode()


def later(delay: float, action: Callable[[], object]) -> threading.Thread:
    """Run `action` in a thread after `delay` seconds (a delivery, a stop, a restart)."""

    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def uids_in(dovecot: Dovecot, folder: str) -> list[int]:
    with dovecot.session(ALICE) as client:
        client.select_folder(folder, readonly=True)
        return sorted(client.search("ALL"))


def timed(action: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


# -- TLS and login ------------------------------------------------------------------------------------------


def test_imaps_login_verifies_the_server_against_the_configured_ca(options: ImapOptions) -> None:
    with Mailbox(options) as box:
        assert box.connected
        assert {"IDLE", "MOVE", "UIDPLUS"} <= box.capabilities


def test_starttls_login_verifies_the_server_against_the_configured_ca(dovecot: Dovecot) -> None:
    options = imap_options(dovecot, security="starttls", port=dovecot.imap_port)
    with Mailbox(options) as box:
        assert box.uidvalidity("INBOX") > 0


def test_the_system_trust_store_refuses_the_test_certificate(dovecot: Dovecot) -> None:
    options = imap_options(dovecot, ca_file=None)
    with pytest.raises(MailboxUnavailable, match="certificate not trusted"):
        Mailbox(options).connect()


def test_starttls_to_the_implicit_tls_port_fails_within_the_timeout(dovecot: Dovecot) -> None:
    options = imap_options(dovecot, security="starttls", timeout=0.2)
    box = Mailbox(options)
    with pytest.raises(MailboxUnavailable):
        timed(box.connect)
    assert not box.connected


def test_a_wrong_password_is_an_auth_error_at_once_and_never_shows_the_password(dovecot: Dovecot) -> None:
    options = imap_options(dovecot, password="not-the-Secret-123")
    box = Mailbox(options)
    started = time.monotonic()
    with pytest.raises(MailboxAuthError) as caught:
        box.connect()
    assert time.monotonic() - started < 1.0
    assert "AUTHENTICATIONFAILED" in str(caught.value)
    assert ALICE in str(caught.value)
    assert "not-the-Secret-123" not in str(caught.value)
    assert "not-the-Secret-123" not in repr(caught.value.__cause__)
    assert "not-the-Secret-123" not in repr(options)
    assert not box.connected


def test_xoauth2_refused_by_the_server_is_an_auth_error_without_the_token(dovecot: Dovecot) -> None:
    # This Dovecot offers no XOAUTH2 mechanism, so the exchange fails the way a bad token does.
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return "ya29.secret-token"

    options = imap_options(dovecot, auth="xoauth2", password="", token_provider=token)
    with pytest.raises(MailboxAuthError) as caught:
        Mailbox(options).connect()
    assert calls == [1]
    assert "ya29.secret-token" not in str(caught.value)


def test_plain_text_is_refused_unless_loopback_is_explicitly_allowed(dovecot: Dovecot) -> None:
    plain = imap_options(dovecot, security="none", port=dovecot.imap_port)
    with pytest.raises(MailboxError, match="allow_insecure_loopback"):
        Mailbox(plain).connect()
    with Mailbox(replace(plain, allow_insecure_loopback=True)) as box:
        # Dovecot treats a loopback client as secured, so plain LOGIN works (harness.md §2 gotcha 5).
        assert box.uidvalidity("INBOX") > 0


def test_a_server_that_never_answers_times_out(dovecot: Dovecot) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever speaks
        options = imap_options(dovecot, port=silent.getsockname()[1], timeout=0.3)
        started = time.monotonic()
        with pytest.raises(MailboxUnavailable, match=r"no answer within 0\.3 s"):
            Mailbox(options).connect()
        assert time.monotonic() - started < 2


def test_a_server_that_is_down_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ImapOptions(host="127.0.0.1", port=port, username="x", password="y", timeout=1)
    with pytest.raises(MailboxUnavailable) as caught:
        Mailbox(options).connect()
    assert isinstance(caught.value, ConnectionError)


# -- folders ------------------------------------------------------------------------------------------------


def test_connect_creates_the_processed_and_quarantine_folders_once(
    dovecot: Dovecot, options: ImapOptions
) -> None:
    for _ in range(2):
        with Mailbox(options):
            pass
    with dovecot.session(ALICE) as client:
        names = {name for _, _, name in client.list_folders(options.inbox_folder)}
        subscribed = {name for _, _, name in client.list_sub_folders(options.inbox_folder)}
    assert {options.processed_folder, options.quarantine_folder} <= names
    assert {options.processed_folder, options.quarantine_folder} <= subscribed


# -- catch-up by UID ----------------------------------------------------------------------------------------


def test_fetch_since_returns_new_messages_in_uid_order_without_marking_them_seen(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    folder = options.inbox_folder
    raws = [notice(f"ack {n}") for n in range(5)]
    uids = [dovecot.append(ALICE, folder, raw) for raw in raws]

    fetched = list(mailbox.fetch_since(folder, 0, batch=2))

    assert [m.uid for m in fetched] == uids
    assert [m.raw for m in fetched] == raws
    assert {m.uidvalidity for m in fetched} == {dovecot.uidvalidity(ALICE, folder)}
    assert all(isinstance(m.internaldate, datetime) and m.internaldate.tzinfo for m in fetched)
    assert [m.uid for m in mailbox.fetch_since(folder, uids[2])] == uids[3:]
    with dovecot.session(ALICE) as client:
        client.select_folder(folder, readonly=True)
        assert all(b"\\Seen" not in flags for flags in client.get_flags(uids).values())


def test_fetch_since_the_highest_uid_returns_nothing_although_n_star_matches_it(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    folder = options.inbox_folder
    last = max(dovecot.append(ALICE, folder, notice(f"n-star {n}")) for n in range(3))
    with dovecot.session(ALICE) as client:
        client.select_folder(folder, readonly=True)
        assert client.search(["UID", f"{last + 5}:*"]) == [last]  # the gotcha itself

    assert list(mailbox.fetch_since(folder, last)) == []
    assert list(mailbox.fetch_since(folder, last + 5)) == []


def test_fetch_since_an_empty_folder_returns_nothing(mailbox: Mailbox, options: ImapOptions) -> None:
    assert list(mailbox.fetch_since(options.inbox_folder, 0)) == []


def test_fetch_since_a_missing_folder_is_a_mailbox_error(mailbox: Mailbox) -> None:
    with pytest.raises(MailboxError, match="does-not-exist") as caught:
        list(mailbox.fetch_since("does-not-exist", 0))
    assert not isinstance(caught.value, MailboxUnavailable)
    assert mailbox.connected


# -- IDLE ---------------------------------------------------------------------------------------------------


def test_lmtp_delivery_wakes_wait_for_change_within_a_second(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    folder = options.inbox_folder
    assert list(mailbox.fetch_since(folder, 0)) == []
    deliverer = later(0.2, lambda: dovecot.deliver_lmtp(ALICE, notice("wake up"), folder=folder))

    woke, elapsed = timed(lambda: mailbox.wait_for_change(folder, timeout=10))

    deliverer.join()
    assert woke is True
    assert elapsed - 0.2 < IDLE_WAKE_LIMIT
    (delivered,) = mailbox.fetch_since(folder, 0)
    assert delivered.raw.endswith(notice("wake up"))  # after the Return-Path and Received lines LMTP adds


def test_wait_for_change_returns_false_when_nothing_arrives(mailbox: Mailbox, options: ImapOptions) -> None:
    woke, elapsed = timed(lambda: mailbox.wait_for_change(options.inbox_folder, timeout=0.3))
    assert woke is False
    assert 0.3 <= elapsed < 1.0
    assert list(mailbox.fetch_since(options.inbox_folder, 0)) == []  # the connection is still usable


def test_mail_that_arrived_after_the_catch_up_wakes_at_once(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    folder = options.inbox_folder
    assert list(mailbox.fetch_since(folder, 0)) == []
    dovecot.deliver_lmtp(ALICE, notice("between catch-up and idle"), folder=folder)

    woke, elapsed = timed(lambda: mailbox.wait_for_change(folder, timeout=5))

    assert woke is True
    assert elapsed < 0.3


def test_exists_sent_with_the_idle_continuation_is_not_lost_in_the_read_buffer(
    dovecot: Dovecot, options: ImapOptions
) -> None:
    # Regression test for the workaround in imap.ImapConnection: Dovecot reports mail that arrived since the
    # last command right after "+ idling", in the same TLS record; imapclient reads that record into its
    # buffer while looking for the "+", where a poll on the socket cannot see it.
    folder = options.inbox_folder
    client = ImapConnection(
        dovecot.host, port=dovecot.imaps_port, ssl_context=dovecot.ssl_context(), timeout=5
    )
    client.login(ALICE, dovecot.password(ALICE))
    client.select_folder(folder)
    dovecot.deliver_lmtp(ALICE, notice("reported at idle start"), folder=folder)
    client.idle()

    responses, elapsed = timed(lambda: client.idle_check(timeout=2))

    client.idle_done()
    client.logout()
    assert (1, b"EXISTS") in responses
    assert elapsed < 0.3


def test_stop_from_another_thread_ends_the_wait_within_a_second(
    mailbox: Mailbox, options: ImapOptions
) -> None:
    stopper = later(0.2, mailbox.stop)
    woke, elapsed = timed(lambda: mailbox.wait_for_change(options.inbox_folder, timeout=30))
    stopper.join()
    assert woke is False
    assert elapsed < 1.2
    assert mailbox.wait_for_change(options.inbox_folder, timeout=30) is False  # stays stopped


def test_a_shared_stop_event_is_honoured(options: ImapOptions) -> None:
    stop = threading.Event()
    with Mailbox(options, stop_event=stop) as box:
        later(0.1, stop.set)
        woke, elapsed = timed(lambda: box.wait_for_change(options.inbox_folder, timeout=30))
    assert woke is False
    assert elapsed < 1.2


def test_without_idle_wait_for_change_polls(dovecot: Dovecot, options: ImapOptions) -> None:
    polling = replace(options, ignore_capabilities=frozenset({"IDLE"}), poll_seconds=0.2)
    with Mailbox(polling) as box:
        assert "IDLE" not in box.capabilities
        woke, elapsed = timed(lambda: box.wait_for_change(polling.inbox_folder, timeout=30))
        assert woke is True
        assert 0.2 <= elapsed < 0.6
        later(0.1, box.stop)
        assert box.wait_for_change(polling.inbox_folder, timeout=30) is False


# -- moving and flagging ------------------------------------------------------------------------------------


def test_move_puts_the_message_in_the_processed_folder(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    keep = dovecot.append(ALICE, options.inbox_folder, notice("stays"))
    uid = dovecot.append(ALICE, options.inbox_folder, notice("processed"))

    mailbox.move(options.inbox_folder, [uid], options.processed_folder)

    assert uids_in(dovecot, options.inbox_folder) == [keep]
    assert len(uids_in(dovecot, options.processed_folder)) == 1
    assert mailbox.find_uid_by_message_id(options.processed_folder, "<processed@dwp.example>") is not None


@pytest.mark.parametrize("missing", [set(), {"MOVE"}], ids=["move", "copy-expunge"])
def test_several_messages_move_in_one_command(
    dovecot: Dovecot, options: ImapOptions, missing: set[str]
) -> None:
    keep = dovecot.append(ALICE, options.inbox_folder, notice("stays"))
    moving = [dovecot.append(ALICE, options.inbox_folder, notice(f"batch {n}")) for n in range(3)]

    with Mailbox(replace(options, ignore_capabilities=frozenset(missing))) as box:
        box.move(options.inbox_folder, moving, options.processed_folder)
        box.move(options.inbox_folder, [], options.processed_folder)  # nothing to do, no command

    assert uids_in(dovecot, options.inbox_folder) == [keep]
    assert len(uids_in(dovecot, options.processed_folder)) == 3


@pytest.mark.parametrize("missing", [{"MOVE"}, {"MOVE", "UIDPLUS"}], ids=["uid-expunge", "expunge"])
def test_move_without_the_move_capability_copies_and_expunges(
    dovecot: Dovecot, options: ImapOptions, missing: set[str]
) -> None:
    keep = dovecot.append(ALICE, options.inbox_folder, notice("stays"))
    uid = dovecot.append(ALICE, options.inbox_folder, notice("quarantined"))

    with Mailbox(replace(options, ignore_capabilities=frozenset(missing))) as box:
        box.move(options.inbox_folder, [uid], options.quarantine_folder)

    assert uids_in(dovecot, options.inbox_folder) == [keep]
    with Mailbox(options) as box:
        moved = list(box.fetch_since(options.quarantine_folder, 0))
    assert [m.raw for m in moved] == [notice("quarantined")]


def test_flag_adds_the_flag_and_keeps_the_others(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    uid = dovecot.append(ALICE, options.inbox_folder, notice("flag me"), flags=["\\Flagged"])
    mailbox.flag(options.inbox_folder, uid, "\\Seen")
    with dovecot.session(ALICE) as client:
        client.select_folder(options.inbox_folder, readonly=True)
        assert set(client.get_flags([uid])[uid]) == {b"\\Seen", b"\\Flagged"}


# -- UIDVALIDITY and resync ---------------------------------------------------------------------------------


def test_recreating_the_folder_changes_uidvalidity_and_the_catch_up_refuses_old_uids(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    folder = options.inbox_folder
    dovecot.append(ALICE, folder, notice("before"))
    before = mailbox.uidvalidity(folder)
    last = max(m.uid for m in mailbox.fetch_since(folder, 0, expect_uidvalidity=before))

    after = dovecot.recreate_folder(ALICE, folder)
    uid = dovecot.append(ALICE, folder, notice("before"))  # the same message, delivered again

    assert mailbox.uidvalidity(folder) == after != before
    assert mailbox.wait_for_change(folder, timeout=5) is True
    with pytest.raises(UidValidityChanged) as caught:
        list(mailbox.fetch_since(folder, last, expect_uidvalidity=before))
    assert (caught.value.expected, caught.value.actual) == (before, after)
    assert mailbox.find_uid_by_message_id(folder, "before@dwp.example") == uid


def test_a_changed_inbox_uidvalidity_stops_the_catch_up(dovecot: Dovecot, options: ImapOptions) -> None:
    # INBOX cannot be deleted; a server migration or `doveadm mailbox update` changes its UIDVALIDITY in
    # place. Dovecot may show an open session the old value for a moment, so look from a new connection,
    # as the daemon does after the server drops it.
    box = Mailbox(replace(options, inbox_folder="INBOX"))
    box.connect()
    before = box.uidvalidity("INBOX")
    dovecot.set_uidvalidity(ALICE, "INBOX", before + 1000)
    box.connect()
    with pytest.raises(UidValidityChanged, match=f"from {before} to {before + 1000}"):
        list(box.fetch_since("INBOX", 0, expect_uidvalidity=before))
    assert box.uidvalidity("INBOX") == before + 1000
    box.close()


def test_find_uid_by_message_id_matches_the_whole_id_only(
    dovecot: Dovecot, mailbox: Mailbox, options: ImapOptions
) -> None:
    folder = options.inbox_folder
    reply = dovecot.append(
        ALICE, folder, notice("reply", "<r1@dwp.example>", References="<x-sub@ours.example>")
    )
    original = dovecot.append(ALICE, folder, notice("original", "<sub@ours.example>"))

    assert mailbox.find_uid_by_message_id(folder, "<sub@ours.example>") == original
    assert mailbox.find_uid_by_message_id(folder, "sub@ours.example") == original
    assert mailbox.find_uid_by_message_id(folder, "<r1@dwp.example>") == reply
    assert mailbox.find_uid_by_message_id(folder, "<ub@ours.example>") is None
    assert mailbox.find_uid_by_message_id(folder, "<nowhere@ours.example>") is None


# -- server restarts ----------------------------------------------------------------------------------------


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    try:
        server = Dovecot()
    except ServerUnavailable as error:
        unavailable(error)
    with server:
        yield server


def test_a_restart_while_idling_raises_unavailable_promptly_and_reconnect_works(own_dovecot: Dovecot) -> None:
    options = imap_options(own_dovecot)
    box = Mailbox(options)
    box.connect()
    assert list(box.fetch_since("INBOX", 0)) == []
    restarter = later(0.3, own_dovecot.restart)
    started = time.monotonic()

    with pytest.raises(MailboxUnavailable):
        box.wait_for_change("INBOX", timeout=30)

    assert time.monotonic() - started < 0.3 + 1.5
    assert not box.connected
    restarter.join()
    own_dovecot.deliver_lmtp(ALICE, notice("after restart"))
    box.connect()
    (delivered,) = box.fetch_since("INBOX", 0)
    assert delivered.raw.endswith(notice("after restart"))
    box.close()


def test_calls_on_a_dropped_connection_are_unavailable_not_hangs(own_dovecot: Dovecot) -> None:
    box = Mailbox(imap_options(own_dovecot))
    box.connect()
    own_dovecot.stop()
    for call in (lambda: box.uidvalidity("INBOX"), lambda: list(box.fetch_since("INBOX", 0))):
        with pytest.raises(MailboxUnavailable):
            timed(call)
    with pytest.raises(MailboxUnavailable):
        box.connect()
    own_dovecot.start()
    box.connect()
    assert box.uidvalidity("INBOX") > 0
    box.close()
