"""A fault-injecting SMTP relay on 127.0.0.1 (aiosmtpd) for tests, the harness, crash tests and benches.

STARTTLS (or implicit TLS) with a CA made by trustme, AUTH required (PLAIN/LOGIN, optionally XOAUTH2),
every DATA transaction recorded, and the failures of Postfix's smtp-sink on demand:

    with SmtpServer() as relay:                     # also `async with`, or start()/stop() from a script
        relay.fail_next("RCPT", 450, "4.2.1 Mailbox busy")
        relay.fail_next("GREETING", 421)            # the banner is a 421 and the relay hangs up
        relay.fail_next("AUTH", 454, "4.7.0 Temporary authentication failure")
        relay.reply_421_and_disconnect_at("MAIL")
        relay.hang_up_after_data()                  # message read, connection closed, no reply
        relay.slow("DATA", 2.0)
        relay.refuse_recipient("nobody@dwp.gov.uk", 550)
        ...
        relay.messages          # accepted messages (Received), relay.transactions: every DATA
        relay.connections       # client connections so far (the readiness probe is not counted)

The server runs in its own thread and event loop (aiosmtpd's Controller), so a sync test, an async test
and a separate process all use it the same way. `python -m tests.support.smtpd` runs one until SIGTERM
and prints its address and CA file as a JSON line.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, AnyStr, Literal, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["GREETING", "AUTH", "MAIL", "RCPT", "DATA"]
SlowStage = Literal["EHLO", "MAIL", "RCPT", "DATA"]
Security = Literal["starttls", "tls", "none"]
MessageHook = Callable[["Received"], Awaitable[None] | None]

DEFAULT_USERNAME = "mailroom"
DEFAULT_PASSWORD = "relay-secret"  # a test credential for a test server
XOAUTH2_FAILURE = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.example/"})


@dataclass(frozen=True)
class Received:
    """One DATA transaction as the relay saw it."""

    connection: int
    mail_from: str
    mail_options: tuple[str, ...]  # e.g. SIZE=72559, BODY=8BITMIME
    rcpt_tos: tuple[str, ...]
    content: bytes
    message_id: str | None
    reply_code: int | None  # None: the relay hung up instead of replying
    auth_user: str | None
    tls: bool
    sequence: int  # 1, 2, ... in arrival order across all connections

    @property
    def accepted(self) -> bool:
        return self.reply_code is not None and 200 <= self.reply_code < 300

    def message(self) -> EmailMessage:
        parsed: EmailMessage = BytesParser(policy=default_policy).parsebytes(self.content)
        return parsed


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    login: str
    success: bool


@dataclass
class _Fault:
    code: int
    text: str
    remaining: int
    disconnect: bool = False
    hang_up: bool = False


@dataclass
class _State:
    """Everything the test thread and the server thread share; every access holds `lock`."""

    username: str
    password: str
    xoauth2_tokens: Mapping[str, str]
    on_message: MessageHook | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: dict[str, list[_Fault]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    transactions: list[Received] = field(default_factory=list)
    auth_attempts: list[AuthAttempt] = field(default_factory=list)
    connections: int = 0
    live: set[_FaultySMTP] = field(default_factory=set)

    def take_fault(self, stage: str) -> _Fault | None:
        with self.lock:
            queue = self.faults.get(stage, [])
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault

    def delay(self, stage: str) -> float:
        with self.lock:
            return self.delays.get(stage, 0.0)


class _FaultySMTP(SMTP):
    """aiosmtpd's protocol with two switches a handler can flip: close after the reply, or never reply."""

    def __init__(self, handler: _Handler, state: _State, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.state = state
        self.connection_number = 0
        self.disconnect_after_reply = False
        self.swallow_replies = False
        self.greeted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._original_transport is None  # STARTTLS calls this again for the TLS layer
        super().connection_made(transport)
        if first and transport.get_extra_info("sslcontext") is not None:
            # Implicit TLS: aiosmtpd only knows STARTTLS as "TLS", and would refuse AUTH without it.
            self._tls_protocol = cast(Any, transport)
        if first:
            with self.state.lock:
                self.state.connections += 1
                self.connection_number = self.state.connections
                self.state.live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        with self.state.lock:
            self.state.live.discard(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        if self.swallow_replies or self.transport is None:
            return
        if not self.greeted:
            # The first reply is the banner: a GREETING fault replaces it, and 421 closes the connection.
            self.greeted = True
            fault = self.state.take_fault("GREETING")
            if fault is not None:
                self.disconnect_after_reply = fault.code == 421
                status = cast(AnyStr, f"{fault.code} {fault.text}")
        await super().push(status)
        if self.disconnect_after_reply and self.transport is not None:
            self.transport.close()


class _Handler:
    """aiosmtpd hooks: apply the fault plan, then behave like a relay that queues what it accepts."""

    def __init__(self, state: _State) -> None:
        self.state = state

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        await self._pause("EHLO")
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._pause("MAIL")
        fault = self._fault(server, "MAIL")
        if fault is not None:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._pause("RCPT")
        fault = self._fault(server, "RCPT")
        if fault is not None:
            return fault
        with self.state.lock:
            refusal = self.state.refused.get(address.lower())
        if refusal is not None:
            return f"{refusal[0]} {refusal[1]}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        smtp = cast(_FaultySMTP, server)
        fault = self.state.take_fault("DATA")
        if fault is not None and fault.hang_up:
            self._record(smtp, session, envelope, None)
            await self._pause("DATA")
            smtp.swallow_replies = True
            if smtp.transport is not None:
                smtp.transport.close()
            return "250 2.0.0 never sent"
        received = self._record(smtp, session, envelope, 250 if fault is None else fault.code)
        await self._pause("DATA")
        if fault is not None:
            smtp.disconnect_after_reply = fault.disconnect
            return f"{fault.code} {fault.text}"
        await self._notify(received)
        return f"250 2.0.0 Ok: queued as Q{received.connection:03d}X{received.sequence:06d}"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        blob = await _initial_response(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        login, token = _parse_xoauth2(blob)
        with self.state.lock:
            ok = login is not None and self.state.xoauth2_tokens.get(login) == token
            self.state.auth_attempts.append(AuthAttempt("XOAUTH2", login or "", ok))
        if ok:
            assert login is not None
            return AuthResult(success=True, auth_data=LoginPassword(login.encode(), b""))
        # RFC 7628 / Google's XOAUTH2: an error challenge, the client answers with an empty line, then 535.
        await server.challenge_auth(XOAUTH2_FAILURE)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        fault = self.state.take_fault("AUTH")
        if fault is not None:
            with self.state.lock:
                self.state.auth_attempts.append(AuthAttempt(mechanism, login, False))
            return AuthResult(success=False, handled=False, message=f"{fault.code} {fault.text}")
        with self.state.lock:
            ok = login == self.state.username and password == self.state.password
            self.state.auth_attempts.append(AuthAttempt(mechanism, login, ok))
        # handled=False on failure: aiosmtpd then sends the 535 itself.
        return AuthResult(success=ok, handled=ok, auth_data=auth_data if ok else None)

    def _fault(self, server: SMTP, stage: str) -> str | None:
        fault = self.state.take_fault(stage)
        if fault is None:
            return None
        cast(_FaultySMTP, server).disconnect_after_reply = fault.disconnect
        return f"{fault.code} {fault.text}"

    async def _pause(self, stage: str) -> None:
        seconds = self.state.delay(stage)
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _record(self, smtp: _FaultySMTP, session: Session, envelope: Envelope, code: int | None) -> Received:
        content = envelope.original_content or b""
        headers = BytesParser(policy=default_policy).parsebytes(content, headersonly=True)
        auth = session.auth_data
        received = Received(
            connection=smtp.connection_number,
            mail_from=envelope.mail_from or "",
            mail_options=tuple(envelope.mail_options),
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=content,
            message_id=str(headers["Message-ID"]).strip() if headers["Message-ID"] else None,
            reply_code=code,
            auth_user=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            tls=smtp.transport is not None and smtp.transport.get_extra_info("sslcontext") is not None,
            sequence=0,
        )
        with self.state.lock:
            received = replace(received, sequence=len(self.state.transactions) + 1)
            self.state.transactions.append(received)
        return received

    async def _notify(self, received: Received) -> None:
        hook = self.state.on_message
        if hook is None:
            return
        result = hook(received)
        if inspect.isawaitable(result):
            await result


class _Controller(Controller):
    def __init__(self, handler: _Handler, state: _State, **kwargs: Any) -> None:
        self._state = state
        super().__init__(handler, **kwargs)

    def factory(self) -> _FaultySMTP:
        return _FaultySMTP(self.handler, self._state, **self.SMTP_kwargs)


class SmtpServer:
    """The relay. Nothing listens until start() (or entering the context); stop() removes the cert files."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        security: Security = "starttls",
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        xoauth2_tokens: Mapping[str, str] | None = None,
        require_auth: bool | None = None,
        port: int | None = None,
        ca: trustme.CA | None = None,
        on_message: MessageHook | None = None,
        data_size_limit: int = 50 * 1024 * 1024,
        auth_mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN"),
        cert_names: tuple[str, ...] = ("127.0.0.1", "localhost"),
    ) -> None:
        self.security = security
        self.username = username
        self.password = password
        # AUTH stays offered in plain text ("none") but is not required there: aiosmtpd warns otherwise.
        self.require_auth = security != "none" if require_auth is None else require_auth
        self.port = port or free_port()
        self.data_size_limit = data_size_limit
        self.auth_mechanisms = auth_mechanisms
        self.cert_names = cert_names
        self.ca = ca or trustme.CA()
        self._xoauth2 = dict(xoauth2_tokens or {})
        self._state = _State(username, password, self._xoauth2, on_message)
        self._controller: _Controller | None = None
        self._folder: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        if self._controller is not None:
            raise RuntimeError("SMTP test server already running")
        # aiosmtpd logs a deprecation *message* on every AUTH and every session at INFO; keep errors only.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self._folder = Path(tempfile.mkdtemp(prefix="smtpd"))
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        handler = _Handler(self._state)
        self._controller = _Controller(handler, self._state, **self._controller_options(handler))
        try:
            self._controller.start()
        except BaseException:
            self.stop()
            raise
        with self._state.lock:
            self._state.connections = 0  # the Controller's readiness probe is not a client
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop(no_assert=True)
            controller.loop.close()  # a Controller that never started still owns an open loop
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SmtpServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def ca_pem(self) -> Path:
        """The CA that signed the server certificate: a client's `ca_file`."""
        if self._folder is None:
            raise RuntimeError("SMTP test server not started")
        return self._folder / "ca.pem"

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    # -- fault injection -------------------------------------------------------------------------------

    def fail_next(self, stage: Stage, code: int, text: str = "", count: int = 1) -> None:
        """The next `count` banners (GREETING), AUTH (PLAIN/LOGIN), MAIL, RCPT or DATA (final reply, after
        the content) commands get this reply; a 421 banner also closes the connection."""
        self._add_fault(stage, _Fault(code, text or _default_text(code), count))

    def reply_421_and_disconnect_at(self, stage: Stage, count: int = 1) -> None:
        """Like Postfix shutting down: 421 at that stage, then the server closes the connection."""
        self._add_fault(
            stage, _Fault(421, "4.3.2 Service shutting down, closing channel", count, disconnect=True)
        )

    def hang_up_after_data(self, count: int = 1) -> None:
        """Read the whole message, then close the connection without a final reply."""
        self._add_fault("DATA", _Fault(0, "", count, hang_up=True))

    def slow(self, stage: SlowStage, seconds: float) -> None:
        """Wait `seconds` before every reply at that stage (0 turns it off)."""
        with self._state.lock:
            self._state.delays[stage] = seconds

    def refuse_recipient(self, address: str, code: int = 550, text: str = "") -> None:
        """Refuse RCPT for this address (case-insensitive) until reset()."""
        with self._state.lock:
            self._state.refused[address.lower()] = (code, text or _default_text(code))

    def disconnect_all(self) -> None:
        """Close every open client connection from the server side, as an idle timeout would."""
        if self._controller is None:
            return
        with self._state.lock:
            live = list(self._state.live)
        for smtp in live:
            if smtp.transport is not None:
                self._controller.loop.call_soon_threadsafe(smtp.transport.close)

    def reset(self) -> None:
        """Forget faults, delays, refusals and everything recorded."""
        with self._state.lock:
            self._state.faults.clear()
            self._state.delays.clear()
            self._state.refused.clear()
            self._state.transactions.clear()
            self._state.auth_attempts.clear()
            self._state.connections = 0

    # -- what the server saw ---------------------------------------------------------------------------

    @property
    def transactions(self) -> list[Received]:
        """Every message whose content reached the server, whatever it replied."""
        with self._state.lock:
            return list(self._state.transactions)

    @property
    def messages(self) -> list[Received]:
        """Messages the server accepted (replied 2xx to)."""
        return [r for r in self.transactions if r.accepted]

    @property
    def connections(self) -> int:
        with self._state.lock:
            return self._state.connections

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        with self._state.lock:
            return list(self._state.auth_attempts)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until `count` messages were accepted (for scripts and end-to-end tests)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"SMTP test server got {len(self.messages)} of {count} messages")
            time.sleep(0.01)
        return self.messages

    # -- internals -------------------------------------------------------------------------------------

    def _add_fault(self, stage: Stage, fault: _Fault) -> None:
        with self._state.lock:
            self._state.faults.setdefault(stage, []).append(fault)

    def _controller_options(self, handler: _Handler) -> dict[str, Any]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*self.cert_names).configure_cert(context)
        offered = {*self.auth_mechanisms, *(["XOAUTH2"] if self._xoauth2 else [])}
        options: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "relay.test",
            "authenticator": handler.authenticate,
            "auth_required": self.require_auth,
            "auth_require_tls": self.security != "none",
            "auth_exclude_mechanism": sorted({"LOGIN", "PLAIN", "XOAUTH2"} - offered),
            "data_size_limit": self.data_size_limit,
            "enable_SMTPUTF8": False,
        }
        if self.security == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif self.security == "tls":
            options["ssl_context"] = context
        return options


def free_port() -> int:
    """A port nobody listens on right now (aiosmtpd's readiness probe needs a concrete one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response, base64: what a client sends after `AUTH XOAUTH2`."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    return base64.b64encode(raw).decode("ascii")


async def _initial_response(server: SMTP, args: list[str]) -> bytes | None:
    if len(args) == 1:
        blob = await server.challenge_auth("", encode_to_b64=False)
        return blob if isinstance(blob, bytes) else None
    try:
        return base64.b64decode(args[1], validate=True)
    except ValueError:
        await server.push("501 5.5.2 Can't decode base64")
        return None


def _parse_xoauth2(blob: bytes) -> tuple[str | None, str | None]:
    fields = dict(part.split("=", 1) for part in blob.decode(errors="replace").split("\x01") if "=" in part)
    bearer = fields.get("auth", "")
    token = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
    return fields.get("user"), token


def _default_text(code: int) -> str:
    if code == 421:
        return "4.3.2 Service not available"
    return "4.3.0 Temporary failure (injected)" if 400 <= code < 500 else "5.7.1 Rejected (injected)"


def main() -> None:
    """Run a relay until SIGTERM/SIGINT; print {"host", "port", "ca_pem", "username", "password"}."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--security", choices=["starttls", "tls", "none"], default="starttls")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = SmtpServer(
        security=args.security, username=args.username, password=args.password, port=args.port or None
    )
    with server:
        info = {"host": server.host, "port": server.port, "ca_pem": str(server.ca_pem)}
        print(json.dumps({**info, "username": args.username, "password": args.password}), flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
