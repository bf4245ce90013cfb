"""sd_notify client: what systemd receives on a real AF_UNIX datagram socket, and silence without systemd.

The sockets here are local datagram sockets in a temp folder (or the abstract namespace), never the
network; a datagram is queued by the time sendto() returns, so reading it needs no waiting.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.edges.sdnotify import SystemdNotifier, notify_address

pytestmark = pytest.mark.integration


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET, as PID 1 holds it."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name

    def messages(self) -> list[str]:
        received = []
        while True:
            try:
                received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return received


def _bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    return sock


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    # A short folder of our own: pytest's tmp_path can exceed the 108-byte AF_UNIX path limit.
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        path = str(Path(folder) / "notify")
        with _bound(path) as sock:
            yield FakeSystemd(sock, path)


def test_ready_sends_ready_and_status_in_one_datagram(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": systemd.name})

    assert notifier.enabled
    assert notifier.ready("runners: intake outbox inbox deadlines")
    assert systemd.messages() == ["READY=1\nSTATUS=runners: intake outbox inbox deadlines"]


def test_ready_without_status_sends_only_ready(systemd: FakeSystemd) -> None:
    assert SystemdNotifier({"NOTIFY_SOCKET": systemd.name}).ready()
    assert systemd.messages() == ["READY=1"]


def test_stopping_watchdog_and_status_each_send_their_field(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": systemd.name})

    assert notifier.watchdog()
    assert notifier.status("queue: 3 waiting")
    assert notifier.stopping("draining the outbox")
    assert systemd.messages() == [
        "WATCHDOG=1",
        "STATUS=queue: 3 waiting",
        "STOPPING=1\nSTATUS=draining the outbox",
    ]


def test_status_text_cannot_inject_a_second_field(systemd: FakeSystemd) -> None:
    SystemdNotifier({"NOTIFY_SOCKET": systemd.name}).status("outbox stalled\nREADY=1")
    assert systemd.messages() == ["STATUS=outbox stalled READY=1"]


def test_abstract_namespace_socket_is_reached() -> None:
    name = f"mailroom-test-{uuid.uuid4().hex}"
    with _bound("\0" + name) as sock:
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert FakeSystemd(sock, name).messages() == ["WATCHDOG=1"]


def test_without_systemd_every_call_is_a_quiet_no_op(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailroom.edges.sdnotify")
    notifier = SystemdNotifier({})

    assert not notifier.enabled
    sent = [notifier.ready("x"), notifier.watchdog(), notifier.status("x"), notifier.stopping()]
    assert sent == [False, False, False, False]
    assert notifier.watchdog_interval() is None
    assert caplog.records == []


def test_missing_socket_never_raises_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailroom.edges.sdnotify")
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(Path(folder) / "gone")})

        assert notifier.ready() is False
        assert notifier.watchdog() is False

    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "unreachable" in caplog.records[0].getMessage()


def test_recovery_after_an_unreachable_socket_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailroom.edges.sdnotify")
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        path = str(Path(folder) / "notify")
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
        assert not notifier.watchdog()
        with _bound(path) as sock:
            assert notifier.watchdog()
            assert FakeSystemd(sock, path).messages() == ["WATCHDOG=1"]

    assert ["unreachable" in r.getMessage() for r in caplog.records] == [True, False]
    assert "reachable again" in caplog.records[1].getMessage()


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/123", "\0/org/freedesktop/systemd1/notify/123"),
        ("", None),
        ("@", None),
        ("run/systemd/notify", None),
        ("vsock:2:1234", None),
    ],
)
def test_notify_address(value: str, address: str | None) -> None:
    assert notify_address(value) == address


def test_relative_notify_socket_disables_notification() -> None:
    assert not SystemdNotifier({"NOTIFY_SOCKET": "notify"}).enabled


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"}, 60.0),
        ({"WATCHDOG_USEC": "60000000"}, 60.0),
        ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": "4242"}, 1.5),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0", "WATCHDOG_PID": "4242"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "sixty"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/run/systemd/notify", **env}, pid=4242)
    assert notifier.watchdog_interval() == interval


def test_watchdog_without_a_notify_socket_is_not_watched() -> None:
    assert SystemdNotifier({"WATCHDOG_USEC": "60000000"}, pid=4242).watchdog_interval() is None


def test_defaults_come_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier().watchdog_interval() == 30.0
