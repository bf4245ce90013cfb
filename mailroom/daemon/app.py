"""`mailroom run`: one asyncio process with four runners (intake, outbox, inbox, deadlines).

Wiring only: it builds the real adapters from the settings, starts the runners, feeds the systemd
watchdog while every runner is alive, and stops within seconds on SIGTERM or SIGINT without losing work
(everything that matters is already committed; an unfinished send is resent with the same Message-ID).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine, make_url

from mailroom.core.config import Settings
from mailroom.core.errors import ConfigError, DatabaseUnavailable, StoreError
from mailroom.daemon.command_server import CommandServer
from mailroom.daemon.runners import Backoff, Heartbeat, periodic, sleep_or_stop
from mailroom.daemon.watcher import InboxWatcher
from mailroom.daemon.wiring import make_mailroom, system_now
from mailroom.edges.configfile import read_secret
from mailroom.edges.imap import ImapOptions
from mailroom.edges.leader import InstanceLock
from mailroom.edges.mailbox import Mailbox
from mailroom.edges.process import this_process
from mailroom.edges.sdnotify import SystemdNotifier
from mailroom.edges.tokens import TokenCommand
from mailroom.service.clocks import ClockKeeper, work_calendar_in_child
from mailroom.service.digest import send_digest_if_due
from mailroom.service.heartbeat import HeartbeatRecorder
from mailroom.service.inbound import Inbox
from mailroom.service.intake import Intake
from mailroom.service.mailroom import Mailroom
from mailroom.service.outage import OutageLog, record_contact
from mailroom.service.sending import Outbox
from mailroom.store.engine import probe_write, require_current_schema
from outbox.allowlist import AllowList
from outbox.errors import SendError
from outbox.transport import SmtpTransport
from outbox.types import SmtpOptions

if TYPE_CHECKING:
    from mailroom.daemon.metrics import Metrics

log = logging.getLogger(__name__)
Now = Callable[[], datetime]
INTAKE_INTERVAL = 5.0
DATABASE_RETRY_CAP = 30.0  # seconds between attempts at most while the database cannot be used at start
STOP_GRACE = 8.0


@dataclass
class Parts:
    """Every adapter and use-case object of one daemon, built once from the settings."""

    settings: Settings
    engine: Engine
    now: Now
    clocks: ClockKeeper
    mailroom: Mailroom
    outbox: Outbox
    inbox: Inbox
    intake: Intake
    watcher: InboxWatcher | None
    recorder: HeartbeatRecorder
    instance_lock: InstanceLock


def smtp_transport(settings: Settings) -> SmtpTransport:
    s = settings.smtp
    password = None
    if s.username and s.auth == "login":
        password = read_secret(s.password_file, source=settings.source, key="[smtp] password_file")
    token = (
        TokenCommand(s.token_command, source=settings.source, key="[smtp] token_command")
        if s.auth == "xoauth2"
        else None
    )
    options = SmtpOptions(
        host=s.host,
        port=s.port,
        security=s.security,
        username=s.username or None,
        password=password,
        auth=s.auth,
        token_provider=token,
        token_refused=token.forget if token else None,
        ca_file=str(s.ca_file) if s.ca_file else None,
        timeout=s.timeout_seconds,
        allow_insecure_loopback=s.allow_insecure_loopback,
        redirect_all_to=settings.outbox.redirect_all_to or None,
        local_hostname=s.local_hostname or None,
    )
    try:
        return SmtpTransport(options, AllowList(settings.allowed_recipients()))
    except (ValueError, SendError) as exc:
        raise ConfigError(settings.source, "[smtp]", str(exc)) from None


def imap_mailbox(settings: Settings) -> Mailbox | None:
    i = settings.imap
    if not i.username:
        log.warning("[imap] username is empty: DWP's replies will not be read")
        return None
    password = ""
    if i.auth == "login":
        password = read_secret(i.password_file, source=settings.source, key="[imap] password_file")
    token = (
        TokenCommand(i.token_command, source=settings.source, key="[imap] token_command")
        if i.auth == "xoauth2"
        else None
    )
    return Mailbox(
        ImapOptions.from_settings(
            i, password=password, token_provider=token, token_refused=token.forget if token else None
        )
    )


def build(settings: Settings, *, now: Now = system_now, engine: Engine | None = None) -> Parts:
    mailroom = make_mailroom(settings, engine=engine, now=now)
    engine, documents = mailroom.engine, mailroom.documents
    clocks = ClockKeeper(settings, work_calendar_in_child(settings))
    me = this_process()
    outbox = Outbox(settings, engine, documents, smtp_transport(settings), now, clocks, owner=me.instance_id)
    inbox = Inbox(settings, engine, documents, now, clocks, mailroom.nino_key)
    mailbox = imap_mailbox(settings)
    watcher = InboxWatcher(mailbox, inbox, engine) if mailbox else None
    recorder = HeartbeatRecorder(engine, me, version=package_version("mhss-mailroom"), config=settings.source)
    return Parts(
        settings,
        engine,
        now,
        clocks,
        mailroom,
        outbox,
        inbox,
        Intake(settings, mailroom),
        watcher,
        recorder,
        InstanceLock(engine, me.instance_id),
    )


def wait_for_database(
    settings: Settings, engine: Engine, *, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Before `run` builds anything: wait while the database cannot be opened or written (a read-only
    file system after a restore, a server still starting), logging the outage once, rather than exiting
    and meeting systemd's restart limit. A schema that needs `db upgrade` still stops the daemon."""
    outage = OutageLog(f"database {_where(settings)}", log, channel="database")
    backoff = Backoff(random.Random(), initial=1.0, cap=DATABASE_RETRY_CAP)
    while True:
        try:
            require_current_schema(engine)
            probe_write(engine)
        except DatabaseUnavailable as exc:
            delay = backoff.next_delay()
            outage.failed(exc, retry_in=delay)
            sleep(delay)
            continue
        outage.recovered()
        return


def _where(settings: Settings) -> str:
    url = make_url(settings.store.url)
    return (url.database or "") if url.drivername.startswith("sqlite") else f"{url.host}:{url.port or ''}"


async def run_once(parts: Parts) -> dict[str, object]:
    """One pass of every runner, in the order a report travels: intake, send, read replies, clocks, send."""
    await asyncio.to_thread(_announce, parts)
    try:
        return await _one_pass(parts)
    finally:
        await asyncio.to_thread(parts.recorder.beat, stopping=True)
        parts.instance_lock.release()


def _announce(parts: Parts) -> None:
    """Take this instance's lock (proof of life for other daemons), then write its heartbeat row."""
    if not parts.instance_lock.acquire():
        # Two live instances whose ids share a CRC-32: vanishingly rare, and a fresh start picks a new id.
        raise StoreError("another running daemon holds this instance's lock (an id collision); start again")
    parts.recorder.start()


async def _one_pass(parts: Parts) -> dict[str, object]:
    report: dict[str, object] = {"intake": await asyncio.to_thread(parts.intake.scan)}
    report["outbox"] = (await parts.outbox.run_once()).__dict__
    if parts.watcher:
        try:
            report["inbox"] = await asyncio.to_thread(parts.watcher.catch_up)
            record_contact("imap")
        finally:
            await asyncio.to_thread(parts.watcher.mailbox.close)
    report["clocks"] = (await asyncio.to_thread(parts.clocks.sweep, parts.engine, parts.now())).__dict__
    report["digest"] = await asyncio.to_thread(_digest, parts)
    # Reminders, escalations and the digest the sweep queued go out in the same pass.
    report["notices"] = (await parts.outbox.run_once()).__dict__
    return report


async def run_forever(parts: Parts) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    heartbeat = Heartbeat()
    notifier = SystemdNotifier()
    await asyncio.to_thread(_announce, parts)
    metrics = _metrics(parts)
    commands = _command_server(parts.settings)
    scheduler = AsyncIOScheduler(event_loop=loop)
    scheduler.add_job(
        _sweep,
        "interval",
        args=(parts, heartbeat),
        seconds=parts.settings.daemon.sweep_seconds,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    tasks = [
        asyncio.create_task(
            periodic(
                "outbox",
                lambda: _outbox_pass(parts),
                stop=stop,
                interval=parts.settings.outbox.poll_seconds,
                heartbeat=heartbeat,
            ),
            name="outbox",
        ),
        asyncio.create_task(
            periodic(
                "intake",
                lambda: asyncio.to_thread(parts.intake.scan),
                stop=stop,
                interval=INTAKE_INTERVAL,
                heartbeat=heartbeat,
            ),
            name="intake",
        ),
    ]
    if parts.watcher:
        tasks.append(asyncio.create_task(parts.watcher.run(stop, heartbeat), name="inbox"))
    watchdog = asyncio.create_task(_watchdog(notifier, heartbeat, stop), name="watchdog")
    beating = asyncio.create_task(_beat(parts, metrics, stop), name="heartbeat")
    notifier.ready(status="running")
    log.info("mailroom running: %d runner(s)", len(tasks) + 1)
    await stop.wait()
    notifier.stopping()
    log.info("stopping")
    parts.outbox.stop()
    if parts.watcher:
        parts.watcher.stop()
    scheduler.shutdown(wait=False)
    _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
    for task in pending:
        task.cancel()
    watchdog.cancel()
    await asyncio.gather(*pending, watchdog, beating, return_exceptions=True)
    if metrics:
        metrics.stop()
    if commands:
        await asyncio.to_thread(commands.stop)
    await asyncio.to_thread(parts.recorder.beat, stopping=True)
    parts.instance_lock.release()
    log.info("stopped")


async def _outbox_pass(parts: Parts) -> bool:
    """One outbox pass; True when it took a full batch, so the runner goes again without sleeping."""
    result = await parts.outbox.run_once()
    return result.sent + result.deferred + result.failed >= parts.settings.outbox.batch_size


async def _sweep(parts: Parts, heartbeat: Heartbeat) -> None:
    try:
        await asyncio.to_thread(parts.clocks.sweep, parts.engine, parts.now())
        await asyncio.to_thread(_digest, parts)
    except Exception:  # a failed sweep is retried at the next interval; the daemon stays up
        log.exception("deadline sweep failed")
    heartbeat.beat("deadlines")


def _digest(parts: Parts) -> bool:
    clocks = parts.clocks
    return send_digest_if_due(parts.engine, parts.settings, clocks.calendar, clocks.wording, parts.now())


def _metrics(parts: Parts) -> Metrics | None:
    m = parts.settings.metrics
    if not m.listen and m.textfile is None:
        return None
    from mailroom.daemon.metrics import Metrics

    metrics = Metrics(parts.engine, parts.settings, system_now)
    try:
        metrics.start()
    except OSError as exc:
        where = parts.settings.source
        raise ConfigError(where, "[metrics] listen", f"cannot listen: {exc.strerror}") from None
    return metrics


def _command_server(settings: Settings) -> CommandServer | None:
    path = settings.daemon.command_socket
    return CommandServer.start(path) if path is not None else None


async def _beat(parts: Parts, metrics: Metrics | None, stop: asyncio.Event) -> None:
    """The database heartbeat (and the metrics textfile) every [daemon] heartbeat_seconds."""
    while not await sleep_or_stop(stop, parts.settings.daemon.heartbeat_seconds):
        await asyncio.to_thread(parts.recorder.beat)
        if metrics:
            await asyncio.to_thread(metrics.write_textfile)


async def _watchdog(notifier: SystemdNotifier, heartbeat: Heartbeat, stop: asyncio.Event) -> None:
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    while not stop.is_set():
        stale = heartbeat.stale(max_age=max(interval * 4, 120.0))
        if stale:
            # Let systemd restart us: a runner that stopped making progress is worse than a restart.
            log.error("runner(s) not making progress: %s; withholding the watchdog ping", ", ".join(stale))
        else:
            notifier.watchdog()
        await asyncio.sleep(interval / 2)
