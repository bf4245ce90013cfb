"""A fault-injecting TCP proxy on 127.0.0.1, to put between a client under test and a real local server.

Dovecot and aiosmtpd never lose a connection on their own; a network does. The proxy makes it do so on
demand, at a byte-exact point:

    with SmtpServer(security="none") as relay, FaultProxy("127.0.0.1", relay.port) as proxy:
        smtp = smtplib.SMTP("127.0.0.1", proxy.port)
        proxy.stall()                   # nothing moves in either direction until stall(False)
        proxy.cut_after(100, "down")    # 100 more server->client bytes, then both sides closed
        proxy.cut_after(100, "down", new_connections=False)  # the same, on the open connections only
        proxy.stall_after(100, "down")  # 100 more server->client bytes, then stall() (a server that hangs)
        proxy.cut_when(b"\\r\\n.\\r\\n")    # the message reaches the server, its reply never comes back
        proxy.cut_all()                 # every open connection closed now
        proxy.refuse()                  # accept, then close at once with no bytes: the client reads EOF
        proxy.go_dark()                 # nothing listens: connect() fails with ECONNREFUSED
        proxy.reset()                   # all faults off (the counters stay)

It runs in its own thread and event loop, like tests.support.smtpd, because the code under test blocks in
imapclient threads *and* runs asyncio: neither a sync nor an async test has to drive it. Every control
call returns only once the proxy's loop has applied it, so the very next byte a test sends sees the fault.
Loopback only: it refuses to listen on, or forward to, any other address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, TypeVar

Direction = Literal["up", "down"]  # up: client -> server, down: server -> client
Cut = Literal["when", "after"] | None
_T = TypeVar("_T")
_CHUNK = 64 * 1024
_CONTROL_TIMEOUT = 5.0


@dataclass
class _Flow:
    """One direction of one connection: what is left of its cut_after budget, and its cut_when watch."""

    budget: int | None = None
    pattern: bytes | None = None
    forward: bool = True
    hold: bool = False  # the budget ends in a stall (stall_after), not a cut
    tail: bytes = b""  # the end of what already passed, so a pattern split across two reads still matches

    def clip(self, chunk: bytes) -> tuple[bytes, Cut]:
        """The part of `chunk` to forward, and the cut it triggers (None: none)."""
        cut: Cut
        out, cut = chunk, None
        if self.pattern is not None:
            window = self.tail + chunk
            at = window.find(self.pattern)
            if at >= 0:
                end = at + len(self.pattern) if self.forward else at
                out, cut = chunk[: max(0, end - len(self.tail))], "when"
            else:
                keep = len(self.pattern) - 1
                self.tail = window[len(window) - keep :] if keep else b""
        if self.budget is not None:
            if len(out) >= self.budget:
                out, cut = out[: self.budget], "after"
            else:
                self.budget -= len(out)
        return out, cut


@dataclass(eq=False)
class _Link:
    """A client connection and its upstream twin; all of it lives on the proxy's loop."""

    client: asyncio.StreamWriter
    flows: dict[Direction, _Flow]
    upstream: asyncio.StreamWriter | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    hushed: bool = False  # cut_when fired: the receiving peer is closed as soon as it answers
    timer: asyncio.TimerHandle | None = None

    def close(self, *, abort: bool = False) -> None:
        """Close both sides (close() still flushes what was forwarded; abort() drops it) and stop pumping."""
        if self.timer is not None:
            self.timer.cancel()
        for writer in (self.client, self.upstream):
            if writer is not None and abort:
                writer.transport.abort()
            elif writer is not None:
                writer.close()
        current = asyncio.current_task()
        for task in self.pumps:
            if task is not current:
                task.cancel()


def _loopback(host: str) -> str:
    """A test proxy must never expose anything beyond this machine, nor reach anything beyond it."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"FaultProxy only works on loopback IP addresses, not {host!r}")
    return host


def _direction(direction: str) -> Direction:
    if direction not in ("up", "down"):
        raise ValueError(f'direction must be "up" or "down", not {direction!r}')
    return "up" if direction == "up" else "down"


class FaultProxy:
    """Forwards 127.0.0.1:`port` to the upstream server, and breaks the stream when told to."""

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.upstream_host = _loopback(upstream_host)
        self.upstream_port = upstream_port
        self.listen_host = _loopback(listen_host)
        self.port = 0  # chosen by binding port 0 in start(); kept across go_dark()
        self.connections = 0  # accepted so far, refused ones included
        self.bytes_up = 0  # forwarded client -> server
        self.bytes_down = 0  # forwarded server -> client
        self.cuts = 0  # connections closed by cut_after / cut_when / cut_all
        self._links: set[_Link] = set()
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        # The faults: read and written on the proxy's loop only (control calls hop over to it).
        self._flowing = asyncio.Event()
        self._refusing = False
        self._template: dict[Direction, _Flow] = {"up": _Flow(), "down": _Flow()}  # for new connections
        self._grace = 1.0

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("FaultProxy already running")
        self._loop, self._flowing = asyncio.new_event_loop(), asyncio.Event()
        self._flowing.set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        try:
            self._call(self._listen())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Drop every connection, stop listening, and end the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CONTROL_TIMEOUT)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------------------

    def refuse(self, on: bool = True) -> None:
        """New connections are accepted and closed at once, before any byte (the client reads EOF)."""

        def apply() -> None:
            self._refusing = on

        self._apply(apply)

    def go_dark(self, on: bool = True) -> None:
        """Close the listening socket, so connect() fails outright; open connections carry on.

        A connection the kernel completed but the proxy has not accepted yet is reset with the socket:
        wait_for_connections() first if one must survive. go_dark(False) listens on the same port again.
        """
        self._call(self._go_dark(on))

    def stall(self, on: bool = True) -> None:
        """Hold every byte (and EOF) in both directions, connections open, until stall(False)."""
        self._apply(self._flowing.clear if on else self._flowing.set)

    def cut_after(self, n_bytes: int, direction: Direction = "down", *, new_connections: bool = True) -> None:
        """On every open (and, unless `new_connections` is False, new) connection: forward `n_bytes` more
        in `direction`, then close both sides.

        Each connection counts its own budget, across reads; 0 cuts at the next byte in that direction.
        With new_connections=False a client's reconnect is left alone, with no race against reset().
        """
        self._budget(n_bytes, direction, hold=False, new_connections=new_connections)

    def stall_after(self, n_bytes: int, direction: Direction = "down") -> None:
        """On every open connection: forward `n_bytes` more in `direction`, then stall() everything.

        A server that stops answering in the middle of a reply: the rest of the reply, and every byte of
        every connection (new ones too), waits until stall(False) or reset(). See `stalled`.
        """
        self._budget(n_bytes, direction, hold=True, new_connections=False)

    def _budget(self, n_bytes: int, direction: Direction, *, hold: bool, new_connections: bool) -> None:
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        side = _direction(direction)

        def apply() -> None:
            flows = self._flows(side) if new_connections else [link.flows[side] for link in self._links]
            for flow in flows:
                flow.budget, flow.hold = n_bytes, hold

        self._apply(apply)

    def cut_when(
        self, pattern: bytes, direction: Direction = "up", *, forward: bool = True, grace: float = 1.0
    ) -> None:
        """On every open and new connection: cut when `pattern` passes in `direction`.

        forward=True: the bytes up to and including the pattern reach the receiving peer; the sending peer
        is closed at once, the receiving one as soon as it answers (the answer is dropped) or after `grace`
        seconds. That is a real cut: a server sees no EOF, acts on what it got, and its reply is lost (and
        aiosmtpd, which abandons a command on EOF, still handles the DATA). forward=False: the pattern is
        withheld (its head, if split across two reads, has already gone) and both sides close at once.
        """
        if not pattern:
            raise ValueError("pattern must not be empty")
        side = _direction(direction)

        def apply() -> None:
            self._grace = grace
            for flow in self._flows(side):
                flow.pattern, flow.forward, flow.tail = pattern, forward, b""

        self._apply(apply)

    def cut_all(self) -> None:
        """Close every open connection now, both sides, as a dead NAT entry or a server restart would."""

        def apply() -> None:
            for link in list(self._links):
                self.cuts += 1
                self._drop(link)

        self._apply(apply)

    def reset(self) -> None:
        """Clear every fault (listen again, release a stall); open connections and counters stay."""

        async def run() -> None:
            self._refusing = False
            self._flowing.set()
            for flow in [*self._flows("up"), *self._flows("down")]:
                flow.budget, flow.pattern, flow.tail, flow.hold = None, None, b"", False
            await self._go_dark(False)

        self._call(run())

    # -- what the proxy saw ----------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self._links)

    @property
    def stalled(self) -> bool:
        """True while stall() (or a stall_after that fired) holds the bytes."""
        return not self._flowing.is_set()

    def wait_for_stall(self, timeout: float = 5.0) -> None:
        """Block until a stall_after budget ran out (or stall() was called)."""
        self._wait(lambda: self.stalled, timeout, "stall")

    def wait_for_cuts(self, n: int, timeout: float = 5.0) -> None:
        """Block until `n` connections were cut (cut_after, cut_when or cut_all) since the proxy started."""
        self._wait(lambda: self.cuts >= n, timeout, f"{n} cuts")

    def wait_for_connections(self, n: int, timeout: float = 5.0) -> None:
        """Block until `n` connections were accepted (from an async test: `await asyncio.to_thread(...)`)."""
        self._wait(lambda: self.connections >= n, timeout, f"{n} connections")

    def wait_for_open(self, n: int, timeout: float = 5.0) -> None:
        """Block until exactly `n` connections are open, e.g. 0 after a cut."""
        self._wait(lambda: self.open_connections == n, timeout, f"{n} open connections")

    # -- internals (the proxy's loop) ------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run `coro` on the proxy's loop and wait for it: when a control call returns, it is in force."""
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("FaultProxy not started")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("FaultProxy control calls come from other threads")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CONTROL_TIMEOUT)

    def _apply(self, action: Callable[[], object]) -> None:
        async def run() -> None:
            action()

        self._call(run())

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise TimeoutError(f"FaultProxy: no {what} within {timeout}s ({self.connections} accepted)")

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _flows(self, side: Direction) -> list[_Flow]:
        return [self._template[side], *(link.flows[side] for link in self._links)]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _go_dark(self, on: bool) -> None:
        if on and self._server is not None:
            self._server.close()  # the listening socket closes now; wait_closed() would wait for clients
            self._server = None
        elif not on and self._server is None:
            await self._listen()

    async def _shutdown(self) -> None:
        await self._go_dark(True)
        for link in list(self._links):
            self._drop(link, abort=True)  # cancels the pumps, so each connection's task ends by itself
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            # Cancel only what is still stuck: Python 3.11 logs a bogus error for a cancelled client task.
            _, stuck = await asyncio.wait(others, timeout=1.0)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await asyncio.sleep(0)  # the aborted transports close their sockets on this turn of the loop

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer, {side: replace(flow, tail=b"") for side, flow in self._template.items()})
        self._links.add(link)
        self.connections += 1
        self._notify()
        try:
            if self._refusing:
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError:
                return
            if link not in self._links:  # cut while connecting
                return
            link.pumps = [
                asyncio.create_task(self._pump(link, "up", reader, link.upstream)),
                asyncio.create_task(self._pump(link, "down", up_reader, writer)),
            ]
            await asyncio.gather(*link.pumps, return_exceptions=True)
        finally:
            self._drop(link)

    async def _pump(
        self, link: _Link, side: Direction, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Copy one direction, applying the faults to each chunk; EOF is passed on as a half-close."""
        flow = link.flows[side]
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                if link.hushed:  # the peer that got a cut_when pattern answered (or hung up): cut it too
                    break
                await self._flowing.wait()
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                data, cut = flow.clip(chunk)
                if cut == "after" and flow.hold:
                    # stall_after: what is over the budget is held back, not dropped, until the stall ends.
                    flow.budget, flow.hold, cut = None, False, None
                    await self._forward(side, data, writer)
                    self._flowing.clear()
                    self._notify()
                    await self._flowing.wait()
                    data = chunk[len(data) :]
                await self._forward(side, data, writer)
                if cut == "when" and flow.forward:
                    self.cuts += 1
                    self._notify()
                    self._hush(link, side)
                    return
                if cut is not None:
                    self.cuts += 1
                    self._notify()
                    break
        except OSError:
            pass
        self._drop(link)

    async def _forward(self, side: Direction, data: bytes, writer: asyncio.StreamWriter) -> None:
        if not data:
            return
        # Count first: a client in another thread may act on the bytes before this line ends.
        if side == "up":
            self.bytes_up += len(data)
        else:
            self.bytes_down += len(data)
        writer.write(data)
        await writer.drain()

    def _hush(self, link: _Link, side: Direction) -> None:
        """cut_when with forward=True: close the sender now, the receiver once it answers or after grace."""
        link.hushed = True
        sender = link.client if side == "up" else link.upstream
        if sender is not None:
            sender.close()
        link.timer = asyncio.get_running_loop().call_later(self._grace, self._drop, link)

    def _drop(self, link: _Link, *, abort: bool = False) -> None:
        link.close(abort=abort)
        if link in self._links:
            self._links.discard(link)
            self._notify()
