"""The command server: a process started by the daemon (`[daemon] command_socket`) that has the CLI's
heavy imports done and forks one worker per command handed over by mailroom/cli/launch.py.

    python -m mailroom.cli.server --socket PATH [--watch-fd N]

It serves only its own user (SO_PEERCRED), on a socket made 0600. It imports the libraries and the
layers below the CLI but none of mailroom.cli itself: each worker imports the click commands after it
has taken the client's stdout, stderr and environment, so what they print is set up for the client's
terminal, not the daemon's journal. It holds no database connection, no thread and no open file but its
socket, so a fork is clean. It ends when the daemon ends (EOF on --watch-fd, even after a kill -9) or on
SIGTERM, removing its socket; a worker in flight finishes its command.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import logging
import os
import select
import selectors
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from mailroom.cli.launch import code_fingerprint
from mailroom.cli.wire import GO, HEADER, MAX_REQUEST, connect

log = logging.getLogger("mailroom.cli.server")

# What the commands import, so that no worker pays for it. Import errors are not fatal: a worker
# imports what is missing itself (psycopg, say, where only SQLite is used).
PRELOAD = (
    "click",
    "rich.console",
    "rich.table",
    "rich.progress",
    "sqlalchemy",
    "sqlmodel",
    "psycopg",
    "mailroom.store.models",
    "mailroom.store.engine",
    "mailroom.store.readonly",
    "mailroom.store.mi",
    "mailroom.service.views",
    "mailroom.service.status",
    "mailroom.service.mailroom",
    "mailroom.service.inbound",
    "mailroom.service.clocks",
    "mailroom.daemon.wiring",
    "parsers.pdf",
    "parsers.classify",
    "outbox.crypto",
    "holidays",
    "holidays.countries.united_kingdom",
)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
BACKLOG = 64
STANDBY_SECONDS = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailroom.cli.server", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--watch-fd", type=int, help="the daemon's end of a pipe; EOF means it is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    listener: socket.socket | None = None
    try:
        preload()
        fingerprint = code_fingerprint()
        listener = listen(args.socket)
        while listener is None and args.watch_fd is not None:
            # Another server answers: a second daemon on this host, or the last one of a daemon that was
            # just killed and has not seen it yet. Stand by, and take over when that one is gone.
            if select.select([args.watch_fd], [], [], STANDBY_SECONDS)[0]:
                return 0  # our own daemon has gone meanwhile
            listener = listen(args.socket, quiet=True)
        if listener is not None:
            serve(listener, args.watch_fd, fingerprint)
    except KeyboardInterrupt:  # SIGTERM from the daemon, or Ctrl-C when run by hand
        pass
    except OSError as exc:
        log.warning("command server not started: %s: %s", args.socket, exc.strerror or exc)
    finally:
        if listener is not None:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                args.socket.unlink()
    return 0


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # Workers share these pages with the server until they write to them; a frozen heap is not
    # touched by the workers' garbage collections, so they stay shared.
    gc.collect()
    gc.freeze()


def listen(path: Path, *, quiet: bool = False) -> socket.socket | None:
    """The listening socket, 0600; None if another command server already answers there."""
    other = connect(path)
    if other is not None:
        other.close()
        if not quiet:
            log.info("another command server answers at %s; standing by", path)
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a server that was killed
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(BACKLOG)
    log.info("command server listening at %s", path)
    return listener


def serve(listener: socket.socket, watch_fd: int | None, fingerprint: str) -> None:
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "client")
    if watch_fd is not None:
        selector.register(watch_fd, selectors.EVENT_READ, "daemon")
    while True:
        for key, _ in selector.select():
            if key.data == "daemon":
                log.info("the daemon has gone; command server stopping")
                return
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            try:
                pid = os.fork()
            except OSError as exc:  # out of processes or memory: the client runs the command itself
                log.warning("command server cannot fork a worker: %s", exc.strerror or exc)
                connection.close()
                continue
            if pid == 0:
                selector.close()
                listener.close()
                if watch_fd is not None:
                    os.close(watch_fd)
                answer(connection, fingerprint)
            connection.close()


def answer(connection: socket.socket, fingerprint: str) -> NoReturn:
    """In the worker: check who asks and what it sees, take its terminal, run the command, send back
    the exit code. Never returns."""
    code, started = 1, False
    try:
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        refuse_other_users(connection)  # before reading a byte of what it sends
        request, fds = receive(connection)
        os.fchdir(fds[3])
        refuse_unless_same_view(request, fingerprint)
        send(connection, {"pid": os.getpid()})
        if connection.makefile("rb").readline() != GO:
            os._exit(0)  # the client gave up waiting and runs the command itself: run nothing here
        started = True
        take_over(request, fds)
        from mailroom.cli.main import run

        code = run(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        if not started:  # nothing ran: the client runs the command itself
            with contextlib.suppress(OSError):
                send(connection, {"refused": str(exc) or type(exc).__name__})
            os._exit(0)
        import traceback

        traceback.print_exc()  # a bug: the traceback goes to the client's stderr, as in its own process
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        send(connection, {"exit": code})
    os._exit(code)


class Refused(Exception):
    """The worker must not run this client's command (another user, other code, other files)."""


def refuse_unless_same_view(request: dict[str, Any], fingerprint: str) -> None:
    problem = refusal(request, fingerprint)
    if problem is not None:
        raise Refused(problem)


def receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _address = socket.recv_fds(connection, 65536, 4)
    if len(fds) != 4 or len(data) < HEADER.size:
        raise ConnectionError("a malformed request")
    (length,) = HEADER.unpack_from(data)
    if length > MAX_REQUEST:
        raise ConnectionError("an oversized request")
    body = bytearray(data[HEADER.size :])
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise ConnectionError("a request cut short")
        body += chunk
    return json.loads(body), fds


def refuse_other_users(connection: socket.socket) -> None:
    """Only the server's own user is served: its uid from the kernel (SO_PEERCRED), not from its words."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(credentials)
    if uid != os.getuid():
        raise Refused("another user")


def refusal(request: dict[str, Any], fingerprint: str) -> str | None:
    """Why this worker must not run the command for this client (other code, other files), or None."""
    if request.get("code") != fingerprint:
        return "other code (restart the daemon after an upgrade)"
    for name, device, inode in request.get("files", []):
        try:
            seen = Path(name).stat()
        except OSError:
            return f"{name} is not visible to the daemon"
        if (seen.st_dev, seen.st_ino) != (device, inode):
            return f"{name} is another file for the daemon"
    return None


def take_over(request: dict[str, Any], fds: list[int]) -> None:
    """Become the client's process as far as a command can tell: its stdin, stdout, stderr, environment,
    time zone, umask and arguments."""
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own stream
    sys.stdout = open(1, "w", encoding="utf-8", buffering=1 if os.isatty(1) else -1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
    logging.root.handlers.clear()  # the server's own log lines went to the daemon's journal
    logging.root.setLevel(logging.WARNING)
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    os.umask(int(request["umask"]))
    sys.argv = ["mailroom", *request["argv"]]


def send(connection: socket.socket, reply: dict[str, Any]) -> None:
    connection.sendall(json.dumps(reply).encode("utf-8") + b"\n")


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
