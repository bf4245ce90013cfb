"""Outbox throughput: reports through intake → queue → the real Outbox → a local relay, vs bare aiosmtplib.

    .venv/bin/python bench/outbox.py [--n 500] [--cases 20] [--profile]

1. Intake: N distinct one-page report PDFs (~42 KB, Arial 12, tests/support/pdfs.py) go through
   `Mailroom.submit` as `mailroom submit` runs it: read, preflight (pdfplumber), gpg-encrypt at rest,
   store, queue. Timed on its own: the intake rate.
2. Outbox: `Outbox.run_once` passes back to back until the queue is empty, with the production wiring
   (`daemon.app.build`): claim a batch under a lease, gpg-decrypt and compose each report, send over one
   verified STARTTLS + AUTH connection per pass, commit the 250 reply and start the clocks.
3. Baseline: the very same wire bytes (rebuilt by the outbox after the timed run) sent with plain aiosmtplib
   over one connection with one SSLContext, twice; the faster run counts. Connecting and AUTH are inside
   both timings.

The relay is tests/support/smtpd.py in its own process (a real relay is another process, and a relay in
this interpreter would share its lock with the client being measured). The store is SQLite on disk.
Goal (issue 3): outbox rate >= 0.5 x the bare rate. The table also splits each message's outbox time into
stages (timing shims on the live objects, about a microsecond each); `--profile` adds cProfile of the
worker-thread stages (decrypt + compose, and the commits).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mailroom.service.mailroom
from bench.common import (
    BenchConfig,
    CpuTime,
    Figure,
    RelayAddress,
    RelayProcess,
    StageTimes,
    case_refs,
    gpg_key,
    load_average,
    prepare,
    print_table,
    rate,
    workdir,
)
from mailroom.core.claims import Claim
from mailroom.core.states import SubmissionState
from mailroom.daemon.app import Parts, build
from mailroom.service.sending import DECRYPT_GROUP
from mailroom.store.engine import transaction
from mailroom.store.models import Submission
from outbox.transport import Envelope, SmtpTransport
from tests.support import pdfs

GOAL_RATIO = 0.5


@dataclass(frozen=True)
class Wire:
    """One message as the outbox composed it, and the bytes it puts on the wire."""

    envelope: Envelope
    sender: str
    recipients: tuple[str, ...]
    content: bytes


@dataclass(frozen=True)
class Baselines:
    """Seconds (and this process's CPU seconds) to send the same messages without the queue: bare
    aiosmtplib, and our transport alone."""

    bare: float
    transport: float
    bare_cpu: float


@dataclass(frozen=True)
class OutboxRun:
    seconds: float
    sent: int
    passes: int
    pass_seconds: tuple[float, ...]
    cpu: CpuTime


def write_reports(folder: Path, count: int, refs: list[str]) -> list[tuple[Path, str]]:
    """`count` distinct conforming reports spread over the cases; returns (file, case ref) pairs."""
    folder.mkdir()
    reports = []
    for number in range(count):
        ref = refs[number % len(refs)]
        spec = pdfs.ReportSpec(case_ref=ref, extra_lines=((1, f"Review meeting number {number + 1}."),))
        path = folder / f"report-{number:05d}.pdf"
        path.write_bytes(pdfs.report_pdf(spec))
        reports.append((path, ref))
    return reports


def intake(parts: Parts, reports: list[tuple[Path, str]]) -> float:
    started = time.perf_counter()
    for path, ref in reports:
        submission = parts.mailroom.submit(path, case_ref=ref, report_type="support-plan", actor="bench")
        if submission.state != SubmissionState.QUEUED:
            raise SystemExit(f"bench report {path.name} was not queued: {submission.state}")
    return time.perf_counter() - started


async def drain(parts: Parts, expected: int) -> OutboxRun:
    """Outbox passes back to back (no poll sleep) until `expected` reports were sent."""
    sent = 0
    durations: list[float] = []
    cpu = CpuTime.now()
    started = time.perf_counter()
    while sent < expected:
        begun = time.perf_counter()
        result = await parts.outbox.run_once()
        durations.append(time.perf_counter() - begun)
        if result.deferred or result.failed:
            raise SystemExit(f"outbox pass deferred {result.deferred} and failed {result.failed}")
        if not result.sent:
            break
        sent += result.sent
    seconds = time.perf_counter() - started
    return OutboxRun(seconds, sent, len(durations), tuple(durations), CpuTime.now().since(cpu))


def wire_messages(parts: Parts) -> list[Wire]:
    """Every sent report rebuilt by the outbox (decrypt + compose), as the bytes it sent."""
    with transaction(parts.engine) as session:
        rows = session.exec(
            select(Submission).where(Submission.state == SubmissionState.SENT).order_by(col(Submission.id))
        ).all()
    lease = parts.now() + timedelta(minutes=5)
    claims = []
    for row in rows:
        assert row.id is not None and row.message_id is not None
        claims.append(Claim("submission", row.id, row.message_id, row.attempts, lease))
    wires = []
    for start in range(0, len(claims), DECRYPT_GROUP):
        for envelope in parts.outbox.build_group(claims[start : start + DECRYPT_GROUP]):
            if not isinstance(envelope, Envelope):
                raise SystemExit(f"cannot rebuild a sent report: {envelope}")
            wires.append(Wire(envelope, envelope.sender, envelope.recipients, envelope.content))
    return wires


async def bare_send(relay: RelayAddress, wires: list[Wire]) -> float:
    """Plain aiosmtplib: one SSLContext, one connection (STARTTLS, AUTH), every message; seconds taken."""
    context = ssl.create_default_context(cafile=str(relay.ca_pem))
    started = time.perf_counter()
    client = aiosmtplib.SMTP(hostname=relay.host, port=relay.port, start_tls=True, tls_context=context)
    await client.connect()
    await client.login(relay.username, relay.password)
    for wire in wires:
        await client.sendmail(wire.sender, list(wire.recipients), wire.content)
    await client.quit()
    return time.perf_counter() - started


def intake_timers(parts: Parts) -> StageTimes:
    stages = StageTimes()
    stages.wrap(mailroom.service.mailroom, "preflight", "preflight (pdfplumber)")
    stages.wrap(parts.mailroom.documents, "put", "store the document (encrypt, write, fsync)")
    stages.wrap(parts.mailroom.documents.cipher, "encrypt", "  of which gpg encrypt")
    return stages


async def transport_send(transport: SmtpTransport, wires: list[Wire]) -> float:
    """The production SmtpTransport alone: one session, the serialised envelopes, no queue or database."""
    started = time.perf_counter()
    async with transport.session() as session:
        for wire in wires:
            await session.send_envelope(wire.envelope)
    return time.perf_counter() - started


def baselines(relay: RelayAddress, transport: SmtpTransport, wires: list[Wire]) -> Baselines:
    """Each twice, alternating so that neither gets all the warm caches; the faster run of each counts."""
    bare, ours, cpu = [], [], []
    for _ in range(2):
        before = CpuTime.now()
        bare.append(asyncio.run(bare_send(relay, wires)))
        cpu.append(CpuTime.now().since(before).own)
        ours.append(asyncio.run(transport_send(transport, wires)))
    return Baselines(min(bare), min(ours), min(cpu))


def stage_timers(parts: Parts) -> StageTimes:
    """Timing shims on the outbox's stages. Decrypting and composing the next group runs in a worker thread
    while the current one is on the wire, so stages overlap and may add up to more than the wall time."""
    stages = StageTimes()
    stages.wrap(parts.outbox, "recover_leases", "recover leases (commit)")
    stages.wrap(parts.outbox, "claim", "claim batch (commit)")
    stages.wrap(parts.outbox, "build_group", "decrypt + compose (worker thread, ahead)")
    stages.wrap(parts.outbox.documents.cipher, "decrypt_many", "  of which gpg --decrypt-files")
    stages.wrap(parts.outbox, "record_sent", "record 250s + start clocks (commit)")
    return stages


def profile_threads(parts: Parts, profiler: cProfile.Profile) -> Callable[[], None]:
    """Run the worker-thread stages under one cProfile.Profile (they run one at a time); returns an undo."""
    originals = {method: getattr(parts.outbox, method) for method in ("build_group", "record_sent", "claim")}
    for method, original in originals.items():
        setattr(parts.outbox, method, _under(profiler, original))

    def undo() -> None:
        for method, original in originals.items():
            setattr(parts.outbox, method, original)

    return undo


def _under(profiler: cProfile.Profile, function: Callable[..., Any]) -> Callable[..., Any]:
    def profiled(*args: Any) -> Any:
        return profiler.runcall(function, *args)

    return profiled


def print_profile(profiler: cProfile.Profile, limit: int = 25) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    print("\ncProfile of the outbox's worker-thread stages (build_group, record_sent, claim), cumulative")
    print(out.getvalue())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500, help="reports to submit and send (default 500)")
    parser.add_argument("--cases", type=int, default=20, help="cases the reports are spread over")
    parser.add_argument("--batch-size", type=int, default=None, help="[outbox] batch_size (default: config)")
    parser.add_argument("--profile", action="store_true", help="cProfile the outbox's worker-thread stages")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (database, documents)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.getLogger("mailroom.daemon.app").setLevel(logging.ERROR)  # "no [imap] username": none needed here
    print(f"load average at start: {load_average()}")
    refs = case_refs(args.cases)
    with workdir(args.keep) as root, RelayProcess() as relay, gpg_key() as (home, key):
        config = BenchConfig.base(root).with_relay(relay).with_gpg(home, key)
        if args.batch_size:
            config.set("outbox", batch_size=args.batch_size)
        settings = prepare(config.write(), refs)
        parts = build(settings)
        reports = write_reports(root / "reports", args.n, refs)
        size = sum(path.stat().st_size for path, _ in reports) / len(reports)
        intake_stages = intake_timers(parts)
        intake_seconds = intake(parts, reports)
        intake_stages.stop()
        stages = stage_timers(parts)
        profiler = cProfile.Profile() if args.profile else None
        unprofile = profile_threads(parts, profiler) if profiler else None
        run = asyncio.run(drain(parts, args.n))
        stages.stop()
        if unprofile:
            unprofile()
        wires = wire_messages(parts)
        assert isinstance(parts.outbox.transport, SmtpTransport)
        base = baselines(relay, parts.outbox.transport, wires)
        report(args, settings.outbox.batch_size, size, intake_seconds, run, base)
        print_table(
            "Where one report's intake time goes",
            intake_stages.figures(args.n, "report"),
            [
                f"intake wall time per report {intake_seconds * 1000 / args.n:.1f} ms; the rest is the "
                "database"
            ],
        )
        print_table(
            "Where one message's outbox time goes (timed run)",
            stages.figures(run.sent, "message"),
            [
                f"outbox wall time per message {run.seconds * 1000 / run.sent:.2f} ms; stages overlap (the "
                "next group is decrypted while this one is sent); the SMTP exchange is not shimmed",
                f"wire size {sum(len(w.content) for w in wires) / len(wires) / 1000:.1f} KB per message",
            ],
        )
        if profiler:
            print_profile(profiler)


def report(
    args: argparse.Namespace,
    batch: int,
    pdf_size: float,
    intake_seconds: float,
    run: OutboxRun,
    base: Baselines,
) -> None:
    outbox_rate = rate(run.sent, run.seconds)
    bare_rate = rate(run.sent, base.bare)
    ratio = outbox_rate / bare_rate
    print_table(
        f"Outbox: {run.sent} reports of {pdf_size / 1000:.1f} KB, batch_size {batch}, encrypt_at_rest on",
        [
            Figure(
                "intake (submit: preflight + gpg encrypt + commit)", rate(args.n, intake_seconds), "msg/s"
            ),
            Figure("outbox (Outbox.run_once passes back to back)", outbox_rate, "msg/s"),
            Figure("bare aiosmtplib, one connection", bare_rate, "msg/s"),
            Figure("ratio outbox / bare", ratio, "", ">= 0.5", ratio >= GOAL_RATIO),
            Figure(
                "SmtpTransport alone, one session, same messages", rate(run.sent, base.transport), "msg/s"
            ),
            Figure("outbox CPU, this process (all threads)", run.cpu.own * 1000 / run.sent, "ms/msg"),
            Figure("outbox CPU, gpg child processes", run.cpu.children * 1000 / run.sent, "ms/msg"),
            Figure("bare aiosmtplib CPU, this process", base.bare_cpu * 1000 / run.sent, "ms/msg"),
            Figure("outbox passes (one SMTP connection each)", run.passes, ""),
            Figure("slowest pass", max(run.pass_seconds), "s"),
        ],
        [
            f"intake {intake_seconds:.1f} s, outbox {run.seconds:.1f} s, bare {base.bare:.2f} s, "
            f"transport alone {base.transport:.2f} s (best of 2 each)",
            "relay: aiosmtpd with STARTTLS + AUTH in a child process; store: SQLite (WAL, synchronous=FULL)",
        ],
    )


if __name__ == "__main__":
    main()
