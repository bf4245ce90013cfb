"""`mailroom harness` in the foreground: start the harness, migrate its database, run the daemon beside it,
say where everything is, and stop it all on Ctrl-C (SIGINT) or SIGTERM.

The daemon runs as a child process (`python -m mailroom run`) in a session of its own, so Ctrl-C in the
terminal reaches the harness alone, which then stops the daemon (SIGTERM, as systemd would) before the
servers it talks to. Its log goes to DIR/daemon.log; the harness's terminal shows the DWP simulator's events.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console

from mailroom.harness.simulator import SimulatorEvent
from mailroom.harness.world import Harness, HarnessInfo
from mailroom.store.documents import ensure_private_dir
from mailroom.store.engine import make_engine, upgrade

DAEMON_STOP_SECONDS = 15.0


@dataclass(frozen=True)
class HarnessOptions:
    root: Path | None  # None: a new folder under /tmp, removed on exit
    scenario: Path | None
    daemon: bool
    as_json: bool


def run_harness(options: HarnessOptions, out: Console) -> int:
    """Run until a signal; returns the exit code."""
    root = options.root or Path(tempfile.mkdtemp(prefix="mailroom-harness-", dir="/tmp"))
    harness = Harness(
        root,
        scenario=options.scenario,
        on_event=lambda event: _show_event(out, event, options.as_json),
        remove=options.root is None,
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _stop_on_signal(stop)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with harness:
            info = harness.info
            upgrade_database(info)
            daemon = start_daemon(info) if options.daemon else None
            try:
                _announce(out, info, daemon, options)
                _wait(stop, daemon, out, info)
            finally:
                if daemon is not None:
                    stop_daemon(daemon)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not options.as_json:
        out.print(
            "harness stopped" + (f"; {root} removed" if options.root is None else f"; files kept in {root}")
        )
    return 0


def upgrade_database(info: HarnessInfo) -> None:
    """`mailroom db upgrade` for the harness's config."""
    from mailroom.edges.configfile import load_settings

    settings = load_settings(info.config)
    engine = make_engine(settings.store.url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    ensure_private_dir(settings.store.documents_dir)


def start_daemon(info: HarnessInfo) -> subprocess.Popen[bytes]:
    with (info.root / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mailroom", "--config", str(info.config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_daemon(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is not None:
        return
    daemon.terminate()
    try:
        daemon.wait(timeout=DAEMON_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def guide(info: HarnessInfo, *, daemon: bool) -> str:
    """What a newcomer needs: where everything is, what to type, how to inject a notice by hand."""
    d = info.root
    running = "running; its log is daemon.log" if daemon else "not started (--no-daemon): use `mailroom run`"
    return f"""\
The harness is running. Everything is on 127.0.0.1, and every file is under {d}:

  config          {info.config}
  relay (SMTP)    127.0.0.1:{info.smtp_port}, STARTTLS + AUTH as {info.mailbox}; a copy of each mail in relay/
  mailbox (IMAP)  127.0.0.1:{info.imaps_port} (IMAPS), :{info.imap_port} (STARTTLS), LMTP :{info.lmtp_port};
                  users {info.mailbox} and {info.team}, passwords in secrets/
  DWP simulator   follows {info.scenario}; what it got and sent back is in dwp/
  gpg home        gnupg/ (the documents key, no passphrase)     CA of every server: ca.pem
  daemon          {running}

Try it (in another terminal):
  export MAILROOM_CONFIG={info.config}
  mailroom doctor
  mailroom case add MH-100001
  mailroom submit {info.samples}/MH-100001_support-plan.pdf --case MH-100001 --type support-plan
  mailroom queue ; mailroom case show MH-100001
  (samples/ has two more reports: one DWP returns for its format, one preflight blocks; or drop a PDF
  named CASE_TYPE.pdf into spool/)

Inject a notice by hand:
  mailroom harness reject 1 --reason spelling-grammar    DWP returns report 1 for rework
  mailroom harness deliver notice.eml                    any message, into the mailbox by LMTP
  (copy and edit one of dwp/*.eml; `mailroom parse FILE` shows how it would be read)

Ctrl-C stops everything the harness started.
"""


def _announce(
    out: Console, info: HarnessInfo, daemon: subprocess.Popen[bytes] | None, options: HarnessOptions
) -> None:
    if options.as_json:
        data = {**info.to_dict(), "daemon_pid": daemon.pid if daemon else None}
        out.print(json.dumps(data), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(guide(info, daemon=daemon is not None), markup=False, highlight=False)


def _show_event(out: Console, event: SimulatorEvent, as_json: bool) -> None:
    if as_json:
        line = json.dumps({"event": str(event.kind), "report": event.report, "case_ref": event.case_ref})
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(event.line(), markup=False, highlight=False)


def _wait(
    stop: threading.Event, daemon: subprocess.Popen[bytes] | None, out: Console, info: HarnessInfo
) -> None:
    reported = False
    while not stop.wait(0.5):
        if daemon is not None and not reported and daemon.poll() is not None:
            reported = True
            out.print(
                f"the daemon exited with code {daemon.returncode}; see {info.root / 'daemon.log'}. "
                "The servers keep running: `mailroom run` starts it again.",
                markup=False,
            )


def _stop_on_signal(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return handler
