"""Pure parts of the runners and the IMAP edge: backoff, outage logging, folder names, options."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from mailroom.daemon.runners import Backoff, Heartbeat, periodic, sleep_or_stop
from mailroom.edges.imap import FetchedMessage, ImapOptions, Namespace
from mailroom.service.outage import OutageLog


def test_backoff_doubles_from_one_second_to_a_five_minute_cap_with_jitter() -> None:
    backoff = Backoff(random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert backoff.attempts == 12


def test_backoff_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(random.Random(7), initial=2, cap=10)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert 1 <= backoff.next_delay() <= 2


def test_backoff_survives_a_very_long_outage() -> None:
    backoff = Backoff(random.Random(1))
    for _ in range(10_000):
        assert backoff.next_delay() <= 300


def test_backoff_refuses_a_cap_below_the_initial_delay() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(random.Random(1), initial=10, cap=5)


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageLog("IMAP mailbox", logging.getLogger("test.outage"))
    caplog.set_level(logging.INFO, logger="test.outage")
    outage.recovered()
    for _ in range(3):
        outage.failed(ConnectionError("connection refused"), retry_in=4)
    outage.recovered()
    outage.recovered()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "IMAP mailbox unavailable: connection refused; retrying in 4 s"),
        ("INFO", "IMAP mailbox available again after 3 failed attempts"),
    ]


@pytest.mark.parametrize(
    ("prefix", "delimiter", "folder", "expected"),
    [
        ("", "/", "MHSS/Processed", "MHSS/Processed"),
        ("", ".", "MHSS/Processed", "MHSS.Processed"),
        ("INBOX.", ".", "MHSS/Processed", "INBOX.MHSS.Processed"),
        ("INBOX.", ".", "INBOX", "INBOX"),
        ("INBOX.", ".", "inbox/DWP", "INBOX.DWP"),
        ("INBOX.", ".", "INBOX.Already", "INBOX.Already"),
        ("", None, "Flat", "Flat"),
    ],
)
def test_folder_names_follow_the_servers_namespace(
    prefix: str, delimiter: str | None, folder: str, expected: str
) -> None:
    assert Namespace(prefix, delimiter).server_name(folder) == expected


def test_options_never_show_the_password() -> None:
    assert "pw-Secret-1" not in repr(ImapOptions(host="imap.example", username="u", password="pw-Secret-1"))


@pytest.mark.parametrize(
    "changes",
    [
        {"idle_renew_minutes": 10},
        {"idle_renew_minutes": 0},
        {"security": "ssl"},
        {"timeout": 0},
        {"auth": "xoauth2"},
    ],
)
def test_options_refuse_impossible_values(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImapOptions(host="imap.example", **changes)  # type: ignore[arg-type]


def test_a_fetched_message_repr_holds_no_message_text() -> None:
    assert "AB123456C" not in repr(FetchedMessage("INBOX", 1, 2, b"Subject: x\r\n\r\nNI AB123456C", None))


async def test_a_failing_pass_does_not_stop_the_runner() -> None:
    stop = asyncio.Event()
    calls: list[int] = []

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("one bad pass")
        if len(calls) == 3:
            stop.set()

    heartbeat = Heartbeat()
    await asyncio.wait_for(periodic("test", work, stop=stop, interval=0.001, heartbeat=heartbeat), timeout=5)
    assert calls == [0, 1, 2]
    assert heartbeat.stale(max_age=60) == []


async def test_sleep_or_stop_wakes_at_once_when_stopped() -> None:
    stop = asyncio.Event()
    stop.set()
    assert await asyncio.wait_for(sleep_or_stop(stop, 3600), timeout=1) is True
