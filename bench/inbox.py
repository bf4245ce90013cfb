"""Inbox throughput and latency: DWP's replies through the full pipeline, against a bare imapclient fetch.

    .venv/bin/python bench/inbox.py [--messages 1000] [--latency 50] [--profile]

1. Catch-up: N realistic messages are APPENDed to a folder of a throwaway Dovecot: DWP acknowledgements
   and rejections threaded (In-Reply-To) to reports that are in the database as sent, people's
   out-of-office replies to those reports, and DWP provider bulletins (some with a PDF). The same folder
   is fetched twice with bare imapclient (bench/imap_raw.py: SEARCH, FETCH BODY.PEEK[] in batches of
   100; the faster run counts), then read once by the production watcher (`InboxWatcher.catch_up`, wired
   by `mailroom.daemon.app.build`): fetch, parse, classify, judge trust, match, store the raw message
   gpg-encrypted, commit the effects, MOVE the notice to the processed folder. Logins are outside both
   timings. Goal (issue 4): pipeline rate >= 0.5 x the bare fetch rate.
2. Latency: `mailroom run` starts as a child process and idles in IMAP IDLE; M acknowledgements are
   delivered one at a time by LMTP, and each one's latency runs from the start of the LMTP delivery to
   the moment its inbound row is visible in the database (committed; polled every 5 ms). Goal: p95 <= 1 s,
   of which Dovecot itself takes ~0.5 s to wake an IDLE client (shared/harness.md §2).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import math
import pstats
import random
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from sqlmodel import Session, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import parsers.message
from bench.common import (
    AUTHSERV_ID,
    FROM_ADDRESS,
    BenchConfig,
    Figure,
    StageTimes,
    case_refs,
    gpg_key,
    load_average,
    percentile,
    prepare,
    print_table,
    rate,
    start_daemon,
    stop_daemon,
    workdir,
)
from bench.imap_raw import FetchFigures, raw_fetch
from mailroom.core.states import SubmissionState
from mailroom.daemon.app import Parts, build
from mailroom.daemon.catchup_workers import CatchUpWorkers
from mailroom.daemon.watcher import STORE_GROUP, InboxWatcher
from mailroom.harness import dwp
from mailroom.service.notices import new_message_id
from mailroom.store import queries
from mailroom.store.engine import transaction
from mailroom.store.models import Document, InboundMessage, Submission
from outbox.compose import report_subject
from tests.support import pdfs
from tests.support.dovecot import ALICE, Dovecot

FOLDER = "Bench"
GOAL_RATIO = 0.5
GOAL_P95 = 1.0
POLL_SECONDS = 0.005
# The mix of a provider mailbox's incoming mail; acknowledgements and rejections are DWP's notices.
MIX = {
    "acknowledgement": 0.40,
    "rejection": 0.20,
    "out-of-office": 0.20,
    "bulletin": 0.15,
    "bulletin+pdf": 0.05,
}


@dataclass(frozen=True)
class SentReport:
    """A report the database says went to DWP: what a reply threads to."""

    submission_id: int
    message_id: str
    subject: str
    case_ref: str

    def original(self) -> EmailMessage:
        message = EmailMessage()
        message["From"] = FROM_ADDRESS
        message["Subject"] = self.subject
        message["Message-ID"] = self.message_id
        return message


# -- the database: reports that were sent --------------------------------------------------------------------


def seed_sent_reports(parts: Parts, refs: list[str], count: int) -> list[SentReport]:
    """`count` submissions moved received → queued → sending → sent with their clocks, as the outbox leaves
    them; the PDFs themselves are not needed (nothing is sent again), so their documents are placeholders."""
    now = parts.now()
    sent: list[SentReport] = []
    with transaction(parts.engine) as session:
        cases = [queries.require_case(session, ref) for ref in refs]
        documents = [_placeholder(session, case.id, now) for case in cases if case.id is not None]
        for number in range(count):
            case, document = cases[number % len(cases)], documents[number % len(cases)]
            assert case.id is not None and document.id is not None
            sub = Submission(
                case_id=case.id,
                document_id=document.id,
                report_type="support-plan",
                version=number // len(cases) + 1,
                state=SubmissionState.RECEIVED,
                created_at=now,
            )
            session.add(sub)
            session.flush()
            _mark_sent(parts, session, sub, now)
            assert sub.id is not None and sub.message_id is not None
            subject = report_subject("Support Plan", case.case_ref, sub.token)
            sent.append(SentReport(sub.id, sub.message_id, subject, case.case_ref))
    return sent


def _placeholder(session: Session, case_id: int | None, now: datetime) -> Document:
    assert case_id is not None
    document = Document(case_id=case_id, sha256="0" * 64, size=0, stored_path=None, created_at=now)
    session.add(document)
    session.flush()
    return document


def _mark_sent(parts: Parts, session: Session, sub: Submission, now: datetime) -> None:
    sub.message_id = new_message_id(parts.settings, label=sub.token, now=now)
    sub.queued_at = sub.sent_at = now
    sub.attempts = 1
    sub.sent_reply = "250 2.0.0 Ok: queued as BENCH"
    steps = (
        (SubmissionState.QUEUED, "queued"),
        (SubmissionState.SENDING, "claimed"),
        (SubmissionState.SENT, "sent"),
    )
    for target, action in steps:
        queries.move_submission(session, sub, target, now=now, actor="bench", action=action)
    parts.clocks.on_reports_sent(session, [sub], now=now)


# -- the mail ------------------------------------------------------------------------------------------------


def out_of_office(report: SentReport, now: datetime) -> EmailMessage:
    reply = EmailMessage()
    reply["Authentication-Results"] = (
        f"{AUTHSERV_ID}; dkim=pass header.d=dwp.gov.uk; dmarc=pass header.from=dwp.gov.uk"
    )
    reply["From"] = "Jo Bloggs <jo.bloggs@dwp.gov.uk>"
    reply["To"] = FROM_ADDRESS
    reply["Subject"] = f"Automatic reply: {report.subject}"
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain="dwp.gov.uk")
    reply["In-Reply-To"] = report.message_id
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content(
        "Thank you for your email. I am out of the office until Monday with limited access to email.\n"
        "For urgent Access to Work matters please contact the team mailbox.\n"
    )
    return reply


def bulletin(number: int, now: datetime, *, with_pdf: bool) -> EmailMessage:
    message = EmailMessage()
    message["Authentication-Results"] = (
        f"{AUTHSERV_ID}; dkim=pass header.d=dwp.gov.uk; dmarc=pass header.from=dwp.gov.uk"
    )
    message["From"] = "Access to Work Provider Engagement <atw.provider.engagement@dwp.gov.uk>"
    message["To"] = FROM_ADDRESS
    message["Subject"] = f"Access to Work MHSS provider bulletin {number}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain="dwp.gov.uk")
    message["List-Id"] = "MHSS providers <mhss-providers.dwp.gov.uk>"
    message["Precedence"] = "bulk"
    message.set_content(
        "Dear provider,\n\nThis month's bulletin covers the updated Annex F guidance. Reports returned for "
        "rework should be corrected and resubmitted within 5 working days; the most common reasons this "
        "quarter were missing employment status and formatting (Arial 12 point).\n\n"
        "Service hours remain 9:00 to 17:00, Monday to Friday.\n\nAccess to Work Provider Engagement\n"
    )
    if with_pdf:
        spec = pdfs.ReportSpec(case_ref=None, report_type="other", extra_lines=((1, f"Bulletin {number}"),))
        message.add_attachment(
            pdfs.report_pdf(spec), maintype="application", subtype="pdf", filename="bulletin.pdf"
        )
    return message


def mailbox_mix(reports: list[SentReport], total: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """`total` messages in MIX proportions, shuffled, each rejection after its report's acknowledgement."""
    now = datetime.now(UTC)
    counts = {kind: round(share * total) for kind, share in MIX.items()}
    counts["acknowledgement"] += total - sum(counts.values())
    keyed: list[tuple[float, str, EmailMessage]] = []
    ack_at: dict[int, float] = {}
    for index in range(counts["acknowledgement"]):
        ack_at[index] = rng.random()
        keyed.append(
            (
                ack_at[index],
                "acknowledgement",
                dwp.acknowledgement(reports[index].original(), now=now, authserv_id=AUTHSERV_ID),
            )
        )
    for index in range(counts["rejection"]):
        report = reports[index]
        reasons = rng.sample(sorted(dwp.REASON_WORDING), rng.choice((1, 2)))
        notice = dwp.rejection(
            report.original(), reasons, now=now, authserv_id=AUTHSERV_ID, case_ref=report.case_ref
        )
        keyed.append((ack_at[index] + rng.random() * (1 - ack_at[index]), "rejection", notice))
    for index in range(counts["out-of-office"]):
        keyed.append((rng.random(), "out-of-office", out_of_office(reports[-1 - index], now)))
    for index in range(counts["bulletin"] + counts["bulletin+pdf"]):
        with_pdf = index < counts["bulletin+pdf"]
        keyed.append(
            (
                rng.random(),
                "bulletin+pdf" if with_pdf else "bulletin",
                bulletin(index, now, with_pdf=with_pdf),
            )
        )
    keyed.sort(key=lambda item: item[0])
    return [(kind, message.as_bytes()) for _, kind, message in keyed]


def append_all(server: Dovecot, messages: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    with server.session(ALICE) as client:
        if not client.folder_exists(FOLDER):
            client.create_folder(FOLDER)
        for _, raw in messages:
            client.append(FOLDER, raw)
    return time.perf_counter() - started


# -- 1. catch-up ---------------------------------------------------------------------------------------------


def bare_fetch(server: Dovecot) -> FetchFigures:
    context, password = server.ssl_context(), server.password(ALICE)
    runs = [raw_fetch(server.host, server.imaps_port, context, ALICE, password, FOLDER) for _ in range(2)]
    return min(runs, key=lambda figures: figures.seconds)


def stage_timers(parts: Parts, watcher: InboxWatcher) -> StageTimes:
    stages = StageTimes()
    group = STORE_GROUP
    stages.wrap(parts.inbox, "store_raw", f"store raw messages, {group} per gpg run (in the daemon)")
    stages.wrap(parts.inbox.documents.cipher, "encrypt_many", "  of which gpg --encrypt-files")
    stages.wrap(parts.inbox, "ingest_group", f"ingest, {group} a transaction (read, match, apply, commit)")
    stages.wrap(parts.inbox, "read", "  of which parse + classify + trust here (not in the worker)")
    stages.wrap(parsers.message, "_pdf_text", "    of which PDF attachment text (pdfplumber)")
    stages.wrap(watcher, "_file", "MOVE to the processed or quarantine folder")
    stages.wrap(watcher, "_stored", "waiting for a group's files (the worker's store, or the thread's)")
    stages.wrap(CatchUpWorkers, "readings", "waiting for a group's readings (the worker's)")
    return stages


def catch_up(watcher: InboxWatcher, profiler: cProfile.Profile | None) -> tuple[int, float]:
    watcher.mailbox.connect()  # the login is outside the timing, as for the bare fetch
    started = time.perf_counter()
    count = profiler.runcall(watcher.catch_up) if profiler else watcher.catch_up()
    return count, time.perf_counter() - started


def outcomes(parts: Parts) -> Counter[str]:
    with transaction(parts.engine) as session:
        rows = session.exec(
            select(InboundMessage.kind, InboundMessage.state, func.count()).group_by(
                InboundMessage.kind, InboundMessage.state
            )
        ).all()
    return Counter({f"{kind} -> {state}": count for kind, state, count in rows})


# -- 2. latency ----------------------------------------------------------------------------------------------


def committed_after(database: Path, message_id: str, since: float, timeout: float) -> float:
    """Seconds from `since` (time.time) until the row for `message_id` is committed; nan on timeout."""
    with sqlite3.connect(database, timeout=30) as db:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = db.execute("SELECT 1 FROM inbound_messages WHERE message_id = ?", (message_id,)).fetchone()
            if row:
                return time.time() - since
            time.sleep(POLL_SECONDS)
    return math.nan


def latencies(server: Dovecot, database: Path, reports: list[SentReport], rng: random.Random) -> list[float]:
    """Deliver one acknowledgement at a time by LMTP into the watched folder; seconds until each commits."""
    seconds = []
    for report in reports:
        time.sleep(rng.uniform(0.3, 0.6))  # let the watcher finish and go back into IDLE
        notice = dwp.acknowledgement(report.original(), now=datetime.now(UTC), authserv_id=AUTHSERV_ID)
        started = time.time()
        server.deliver_lmtp(ALICE, notice.as_bytes(), folder=FOLDER)
        seconds.append(committed_after(database, str(notice["Message-ID"]), started, timeout=30))
    return seconds


def measure_latency(
    server: Dovecot, config: Path, root: Path, reports: list[SentReport], rng: random.Random
) -> list[float]:
    database = root / "mailroom.db"
    daemon = start_daemon(config, root / "daemon.log")
    try:
        # The first delivery waits for start-up (imports, login, catch-up); it is not counted.
        warm = latencies(server, database, reports[:1], rng)
        if daemon.poll() is not None or math.isnan(warm[0]):
            tail = (root / "daemon.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"the daemon did not process the warm-up message:\n{tail}")
        return latencies(server, database, reports[1:], rng)
    finally:
        stop_daemon(daemon)


# -- output --------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000, help="messages for the catch-up (default 1000)")
    parser.add_argument(
        "--latency", type=int, default=50, help="messages delivered one at a time (default 50)"
    )
    parser.add_argument("--cases", type=int, default=50, help="cases the reports are spread over")
    parser.add_argument("--profile", action="store_true", help="cProfile the catch-up and print the top")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (database, daemon log)")
    parser.add_argument("--seed", type=int, default=20260302, help="seed for the mix and the delivery gaps")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.getLogger("mailroom.daemon.app").setLevel(logging.ERROR)
    print(f"load average at start: {load_average()}")
    rng = random.Random(args.seed)
    refs = case_refs(args.cases)
    with workdir(args.keep) as root, Dovecot() as server, gpg_key() as (home, key):
        config = BenchConfig.base(root).with_gpg(home, key).with_mailbox(server, FOLDER).write()
        parts = build(prepare(config, refs))
        reports = seed_sent_reports(parts, refs, args.messages + args.latency + 1)
        messages = mailbox_mix(reports[: args.messages], args.messages, rng)
        loading = append_all(server, messages)
        bare = bare_fetch(server)
        assert parts.watcher is not None
        stages = stage_timers(parts, parts.watcher)
        profiler = cProfile.Profile() if args.profile else None
        count, seconds = catch_up(parts.watcher, profiler)
        stages.stop()
        parts.watcher.mailbox.close()
        seen = outcomes(parts)
        reading = reading_alone(parts, messages)
        waits = measure_latency(server, config, root, reports[args.messages :], rng) if args.latency else []
        print_catch_up(messages, loading, bare, count, seconds, stages, seen, reading)
        if waits:
            print_latency(waits)
        if profiler:
            print_profile(profiler)


def reading_alone(parts: Parts, messages: list[tuple[str, bytes]]) -> float:
    """Seconds to parse, classify and judge every message with nothing stored: no pipeline that reads
    each message can beat this, so `reading alone / bare` is the ceiling of the goal's ratio."""
    started = time.perf_counter()
    for _, raw in messages:
        parts.inbox.read(raw)
    return time.perf_counter() - started


def print_catch_up(
    messages: list[tuple[str, bytes]],
    loading: float,
    bare: FetchFigures,
    count: int,
    seconds: float,
    stages: StageTimes,
    seen: Counter[str],
    reading: float,
) -> None:
    pipeline = rate(count, seconds)
    ratio = pipeline / bare.per_second
    reading_rate = rate(len(messages), reading)
    mix = Counter(kind for kind, _ in messages)
    size = sum(len(raw) for _, raw in messages) / len(messages) / 1000
    print_table(
        f"Inbox catch-up: {len(messages)} messages, {size:.1f} KB average, encrypt_at_rest on",
        [
            Figure("bare imapclient fetch (batches of 100)", bare.per_second, "msg/s"),
            Figure("pipeline (InboxWatcher.catch_up)", pipeline, "msg/s"),
            Figure("ratio pipeline / bare", ratio, "", ">= 0.5", ratio >= GOAL_RATIO),
            Figure("pipeline time per message", seconds * 1000 / max(count, 1), "ms"),
            *stages.figures(max(count, 1), "message"),
            Figure("reading alone (parse, classify, trust; nothing stored)", reading_rate, "msg/s"),
            Figure("ceiling of the ratio: reading alone / bare", reading_rate / bare.per_second, ""),
        ],
        [
            "mix: " + ", ".join(f"{kind} {n}" for kind, n in sorted(mix.items())),
            "outcome: " + ", ".join(f"{what} {n}" for what, n in sorted(seen.items())),
            f"APPEND of all messages took {loading:.1f} s (not timed); bare fetch {bare.seconds:.2f} s (best "
            f"of 2), pipeline {seconds:.1f} s for {count} new messages",
            "store: SQLite (WAL, synchronous=FULL) on disk; Dovecot maildir on tmpfs",
        ],
    )


def print_latency(waits: list[float]) -> None:
    valid = [w for w in waits if not math.isnan(w)]
    p95 = percentile(valid, 0.95)
    print_table(
        f"Arrival by LMTP -> committed, {len(waits)} messages one at a time, `mailroom run` idling in IDLE",
        [
            Figure("p50", percentile(valid, 0.50), "s"),
            Figure("p95", p95, "s", "<= 1 s", p95 <= GOAL_P95),
            Figure("max", max(valid, default=float("nan")), "s"),
            Figure("min", min(valid, default=float("nan")), "s"),
            Figure("not committed within 30 s", len(waits) - len(valid), ""),
        ],
        ["Dovecot batches change notifications for 0.5 s before waking IDLE (harness.md §2)"],
    )


def print_profile(profiler: cProfile.Profile, limit: int = 30) -> None:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(limit)
    print("\ncProfile of InboxWatcher.catch_up, by cumulative time")
    print(out.getvalue())


if __name__ == "__main__":
    main()
