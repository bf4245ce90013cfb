"""FaultProxy against real servers on 127.0.0.1: a tiny asyncio echo server, and aiosmtpd via smtplib.

The echo tests are async (the echo server runs on the test's loop, the proxy on its own); the SMTP tests
are sync and blocking, like imapclient in a worker thread. Both ways must work.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration

MESSAGE = b"From: a@provider.example\r\nTo: b@dwp.gov.uk\r\nSubject: hi\r\n\r\nbody\r\n"


class EchoServer:
    """Echoes every byte back and remembers, per connection, what it received until EOF."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.ended = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await eventually(lambda: self.ended == len(self.received))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = bytearray()
        self.received.append(got)
        try:
            while chunk := await reader.read(4096):
                got += chunk
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self.ended += 1


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def eventually_sync(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@contextlib.asynccontextmanager
async def dial(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 2)


async def until_eof(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 2)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.port) as running:
        yield running


@pytest.fixture
def relay() -> Iterator[SmtpServer]:
    with SmtpServer(security="none") as server:
        yield server


@pytest.fixture
def smtp_proxy(relay: SmtpServer) -> Iterator[FaultProxy]:
    with FaultProxy(relay.host, relay.port) as running:
        yield running


def test_only_loopback_addresses() -> None:
    for host in ("192.0.2.1", "localhost", "::ffff:10.0.0.1"):
        with pytest.raises(ValueError, match="loopback"):
            FaultProxy(host, 25)
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("127.0.0.1", 25, listen_host="192.0.2.1")
    assert FaultProxy("::1", 25).upstream_host == "::1"


# -- the echo server, from an async test -----------------------------------------------------------------


async def test_passes_bytes_through_both_ways(proxy: FaultProxy, echo: EchoServer) -> None:
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"hello\r\n") == b"hello\r\n"
        assert (proxy.connections, proxy.open_connections) == (1, 1)
        assert (proxy.bytes_up, proxy.bytes_down) == (7, 7)
        writer.write_eof()  # a half-close travels through, and the server's close comes back
        assert await until_eof(reader) == b""
    await eventually(lambda: proxy.open_connections == 0)
    assert echo.received == [b"hello\r\n"]


async def test_cut_after_down_forwards_exactly_n_bytes_on_open_and_new_connections(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"warm") == b"warm"
        proxy.cut_after(5, "down")
        assert await roundtrip(reader, writer, b"012") == b"012"  # 3 of the 5: the budget spans reads
        writer.write(b"3456789")
        assert await until_eof(reader) == b"34"
    async with dial(proxy.port) as (reader, writer):
        writer.write(b"abcdefgh")
        assert await until_eof(reader) == b"abcde"
    assert proxy.bytes_down == 4 + 5 + 5
    await eventually(lambda: proxy.open_connections == 0)


async def test_cut_after_on_open_connections_only_spares_the_reconnect(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"warm") == b"warm"
        proxy.cut_after(2, "down", new_connections=False)
        writer.write(b"abcdef")
        assert await until_eof(reader) == b"ab"
    await asyncio.to_thread(proxy.wait_for_cuts, 1)
    async with dial(proxy.port) as (reader, writer):  # the client's reconnect: no fault left for it
        assert await roundtrip(reader, writer, b"abcdef") == b"abcdef"
    assert proxy.cuts == 1


async def test_stall_after_forwards_n_bytes_then_holds_the_rest_until_released(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"warm") == b"warm"  # the proxy has the connection now
        proxy.stall_after(4, "down")
        writer.write(b"0123456789")
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"0123"
        await asyncio.to_thread(proxy.wait_for_stall)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(10), 0.2)
        async with dial(proxy.port) as (other, other_writer):  # new connections are held as well
            other_writer.write(b"x")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(other.read(1), 0.2)
            proxy.stall(False)
            assert await asyncio.wait_for(other.readexactly(1), 2) == b"x"
        assert await asyncio.wait_for(reader.readexactly(6), 2) == b"456789"  # nothing was dropped
    assert not proxy.stalled and proxy.cuts == 0


async def test_cut_after_up_stops_the_server_mid_stream(proxy: FaultProxy, echo: EchoServer) -> None:
    proxy.cut_after(3, "up")
    async with dial(proxy.port) as (reader, writer):
        writer.write(b"abcdef")
        assert await until_eof(reader) == b""
    await eventually(lambda: echo.ended == 1)
    assert echo.received == [b"abc"]
    assert proxy.bytes_up == 3


async def test_stall_holds_bytes_until_released(proxy: FaultProxy, echo: EchoServer) -> None:
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"a") == b"a"
        proxy.stall()
        writer.write(b"ping")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(10), 0.2)
        assert echo.received == [b"a"]
        assert proxy.bytes_up == 1
        assert proxy.open_connections == 1
        proxy.stall(False)
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"ping"
    assert echo.received == [b"aping"]


async def test_refuse_closes_new_connections_before_any_byte(proxy: FaultProxy, echo: EchoServer) -> None:
    proxy.refuse()
    async with dial(proxy.port) as (reader, _):
        assert await until_eof(reader) == b""
    assert proxy.connections == 1
    assert echo.received == []  # the upstream was never dialled
    proxy.refuse(False)
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"again") == b"again"


async def test_go_dark_refuses_connect_and_keeps_open_connections(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    port = proxy.port
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"up") == b"up"  # accepted, not just in the backlog
        proxy.go_dark()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        assert await roundtrip(reader, writer, b"still here") == b"still here"
        proxy.go_dark(False)
        assert proxy.port == port
        async with dial(port) as (reader2, writer2):
            assert await roundtrip(reader2, writer2, b"back") == b"back"


async def test_cut_all_closes_every_open_connection(proxy: FaultProxy, echo: EchoServer) -> None:
    async with dial(proxy.port) as (r1, w1), dial(proxy.port) as (r2, w2):
        assert await roundtrip(r1, w1, b"1") == b"1"
        assert await roundtrip(r2, w2, b"2") == b"2"
        assert proxy.open_connections == 2
        proxy.cut_all()
        assert proxy.open_connections == 0
        assert await until_eof(r1) == b""
        assert await until_eof(r2) == b""
        async with dial(proxy.port) as (r3, w3):  # the proxy itself carries on
            assert await roundtrip(r3, w3, b"3") == b"3"
    assert proxy.connections == 3
    await eventually(lambda: echo.ended == 3)


async def test_cut_when_matches_a_pattern_split_across_reads(proxy: FaultProxy, echo: EchoServer) -> None:
    proxy.cut_when(b"STOP", "up")
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"..ST") == b"..ST"
        writer.write(b"OP and more")
        assert await until_eof(reader) == b""  # the echo of "OP" is the answer that gets dropped
    await eventually(lambda: echo.ended == 1)
    assert echo.received == [b"..STOP"]


async def test_reset_clears_every_fault(proxy: FaultProxy, echo: EchoServer) -> None:
    proxy.cut_after(0, "up")
    proxy.cut_when(b"x", "down")
    proxy.stall()
    proxy.refuse()
    proxy.go_dark()
    proxy.reset()
    async with dial(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"xyz") == b"xyz"


async def test_wait_for_connections_from_an_async_test(proxy: FaultProxy, echo: EchoServer) -> None:
    async with dial(proxy.port), dial(proxy.port):
        await asyncio.to_thread(proxy.wait_for_connections, 2, 2.0)
    with pytest.raises(TimeoutError):
        proxy.wait_for_connections(3, timeout=0.05)


# -- aiosmtpd through smtplib, from a sync test -----------------------------------------------------------


def test_smtp_transaction_passes_through(relay: SmtpServer, smtp_proxy: FaultProxy) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_proxy.port, timeout=5) as smtp:
        smtp.ehlo()
        assert smtp.sendmail("a@provider.example", ["b@dwp.gov.uk"], MESSAGE) == {}
    assert [m.rcpt_tos for m in relay.messages] == [("b@dwp.gov.uk",)]
    assert relay.messages[0].content.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")
    smtp_proxy.wait_for_connections(1)
    smtp_proxy.wait_for_open(0)
    assert smtp_proxy.bytes_up > len(MESSAGE)
    assert smtp_proxy.bytes_down > 0


def test_cut_after_the_final_dot_loses_the_reply_not_the_message(
    relay: SmtpServer, smtp_proxy: FaultProxy
) -> None:
    smtp_proxy.cut_when(b"\r\n.\r\n", "up")
    with smtplib.SMTP("127.0.0.1", smtp_proxy.port, timeout=5) as smtp:
        smtp.ehlo()
        down_before_data = smtp_proxy.bytes_down
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.sendmail("a@provider.example", ["b@dwp.gov.uk"], MESSAGE)
    eventually_sync(lambda: len(relay.transactions) == 1)
    assert relay.transactions[0].reply_code == 250  # the server accepted it and answered ...
    smtp_proxy.wait_for_open(0)
    reply_to_data = smtp_proxy.bytes_down - down_before_data
    # ... but only MAIL's, RCPT's and DATA's replies came back, never the one after the dot.
    assert reply_to_data == len(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")


def test_cut_before_the_final_dot_loses_the_message(relay: SmtpServer, smtp_proxy: FaultProxy) -> None:
    smtp_proxy.cut_when(b"\r\n.\r\n", "up", forward=False)
    with (
        smtplib.SMTP("127.0.0.1", smtp_proxy.port, timeout=5) as smtp,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        smtp.sendmail("a@provider.example", ["b@dwp.gov.uk"], MESSAGE)
    smtp_proxy.wait_for_open(0)
    assert relay.transactions == []


def test_smtp_client_sees_refuse_and_go_dark(relay: SmtpServer, smtp_proxy: FaultProxy) -> None:
    smtp_proxy.refuse()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP("127.0.0.1", smtp_proxy.port, timeout=5)
    smtp_proxy.refuse(False)
    smtp_proxy.go_dark()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", smtp_proxy.port, timeout=5)
    smtp_proxy.go_dark(False)
    with smtplib.SMTP("127.0.0.1", smtp_proxy.port, timeout=5) as smtp:
        assert smtp.noop()[0] == 250
    assert relay.connections == 1
