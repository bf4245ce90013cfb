"""Inbox catch-up after a week's outage (issue 13, part 4): the pipeline against its own CPU floor.

    .venv/bin/python bench/catchup.py [--messages 5000] [--cases 200] [--key rsa3072|cv25519] [--profile]

N messages wait in a real Dovecot folder, delivered by LMTP (one LMTP session, `user+Folder@`): DWP
acknowledgements and rejections threaded to reports the database holds as sent (each rejection after
its report's acknowledgement), Microsoft 365 non-delivery reports from DWP's tenant for other reports,
people's out-of-office replies, and mail about nothing of ours (DWP provider bulletins, a few with a PDF).
Then, in this one process and run:

(a) the CPU floor: `Inbox.read` (parse, classify, judge trust; nothing stored, no database) over the very
    same raw bytes, twice (before and after the pipeline), the faster counting;
(b) the pipeline: one `InboxWatcher.catch_up` as the daemon wires it (`mailroom.daemon.app.build`): UID
    FETCH, parse, classify, trust, match, apply, store each raw message gpg-encrypted (real gpg, a
    throwaway key: RSA-3072, GnuPG 2.2's default key on Debian 12, unless `--key cv25519`, which costs
    gpg about twice the CPU a message), commit, UID MOVE to the processed folder. The login is outside
    the timing. It uses both cores as the daemon does: while a group is ingested the next one is stored
    (gpg is a process of its own) and read, after the first group in two worker processes; the floor is
    one core's reading.

Goal: pipeline rate >= 0.4 x the floor.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import random
import smtplib
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    AUTHSERV_ID,
    BenchConfig,
    Figure,
    case_refs,
    gpg_key,
    load_average,
    prepare,
    print_table,
    rate,
    workdir,
)
from bench.inbox import (
    SentReport,
    bulletin,
    catch_up,
    out_of_office,
    outcomes,
    print_profile,
    seed_sent_reports,
    stage_timers,
)
from mailroom.daemon.app import Parts, build
from mailroom.harness import dwp
from tests.support import ndr
from tests.support.dovecot import ALICE, Dovecot

FOLDER = "Catchup"
GOAL_RATIO = 0.4
MIX = {
    "acknowledgement": 0.40,
    "rejection": 0.20,
    "bounce": 0.05,
    "out-of-office": 0.15,
    "bulletin": 0.17,
    "bulletin+pdf": 0.03,
}


def mailbox_mix(reports: list[SentReport], total: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """`total` messages in MIX proportions, shuffled; each rejection after its report's acknowledgement,
    bounces about reports nothing else answers."""
    now = datetime.now(UTC)
    counts = {kind: round(share * total) for kind, share in MIX.items()}
    counts["acknowledgement"] += total - sum(counts.values())
    acks, bounces = counts["acknowledgement"], counts["bounce"]
    assert len(reports) >= acks + bounces, "more reports are needed than messages"
    keyed: list[tuple[float, str, bytes]] = []
    ack_at: dict[int, float] = {}
    for index in range(acks):
        ack_at[index] = rng.random()
        notice = dwp.acknowledgement(reports[index].original(), now=now, authserv_id=AUTHSERV_ID)
        keyed.append((ack_at[index], "acknowledgement", notice.as_bytes()))
    for index in range(counts["rejection"]):
        report = reports[index]
        reasons = rng.sample(sorted(dwp.REASON_WORDING), rng.choice((1, 2)))
        notice = dwp.rejection(
            report.original(), reasons, now=now, authserv_id=AUTHSERV_ID, case_ref=report.case_ref
        )
        keyed.append((ack_at[index] + rng.random() * (1 - ack_at[index]), "rejection", notice.as_bytes()))
    for index in range(bounces):
        keyed.append((rng.random(), "bounce", ndr.m365_ndr(reports[acks + index].original(), now=now)))
    for index in range(counts["out-of-office"]):
        keyed.append((rng.random(), "out-of-office", out_of_office(reports[-1 - index], now).as_bytes()))
    for index in range(counts["bulletin"] + counts["bulletin+pdf"]):
        with_pdf = index < counts["bulletin+pdf"]
        message = bulletin(index, now, with_pdf=with_pdf)
        keyed.append((rng.random(), "bulletin+pdf" if with_pdf else "bulletin", message.as_bytes()))
    keyed.sort(key=lambda item: item[0])
    return [(kind, raw) for _, kind, raw in keyed]


def deliver_all(server: Dovecot, messages: list[tuple[str, bytes]]) -> float:
    """Every message by LMTP straight into FOLDER, over one LMTP session, as an MTA would deliver them."""
    started = time.perf_counter()
    with server.session(ALICE) as client:
        if not client.folder_exists(FOLDER):
            client.create_folder(FOLDER)
    local, domain = server.login_name(ALICE).split("@", 1)
    with smtplib.LMTP(server.host, server.lmtp_port, timeout=30) as lmtp:
        for _, raw in messages:
            lmtp.sendmail("dwp-sim@example.org", [f"{local}+{FOLDER}@{domain}"], raw)
    return time.perf_counter() - started


def floor(parts: Parts, messages: list[tuple[str, bytes]]) -> float:
    """Seconds to parse, classify and judge the trust of every message, nothing stored."""
    started = time.perf_counter()
    for _, raw in messages:
        parts.inbox.read(raw)
    return time.perf_counter() - started


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages waiting (default 5000)")
    parser.add_argument("--cases", type=int, default=200, help="cases the reports are spread over")
    parser.add_argument("--profile", action="store_true", help="cProfile the catch-up and print the top")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (database)")
    parser.add_argument("--seed", type=int, default=20261204, help="seed for the mix")
    parser.add_argument(
        "--key",
        choices=("rsa3072", "cv25519"),
        default="rsa3072",
        help="the documents key's algorithm: GnuPG 2.2's default, as on Debian 12 (default), or cv25519, "
        "which costs gpg twice the CPU a message",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.getLogger("mailroom").setLevel(logging.ERROR)
    print(f"load average at start: {load_average()}")
    rng = random.Random(args.seed)
    refs = case_refs(args.cases)
    with workdir(args.keep) as root, Dovecot() as server, gpg_key(args.key) as (home, key):
        config = BenchConfig.base(root).with_gpg(home, key).with_mailbox(server, FOLDER).write()
        parts = build(prepare(config, refs))
        seeding = time.perf_counter()
        reports = seed_sent_reports(parts, refs, args.messages)
        seeding = time.perf_counter() - seeding
        messages = mailbox_mix(reports, args.messages, rng)
        delivery = deliver_all(server, messages)
        floors = [floor(parts, messages)]
        assert parts.watcher is not None
        stages = stage_timers(parts, parts.watcher)
        profiler = cProfile.Profile() if args.profile else None
        count, seconds = catch_up(parts.watcher, profiler)
        stages.stop()
        parts.watcher.mailbox.close()
        floors.append(floor(parts, messages))
        seen = outcomes(parts)
        floor_rate = rate(len(messages), min(floors))
        pipeline = rate(count, seconds)
        ratio = pipeline / floor_rate
        mix = Counter(kind for kind, _ in messages)
        size = sum(len(raw) for _, raw in messages) / len(messages) / 1000
        print_table(
            f"Inbox catch-up after an outage: {len(messages)} messages waiting, {size:.1f} KB average",
            [
                Figure("CPU floor: parse + classify + trust alone", floor_rate, "msg/s"),
                Figure("pipeline (InboxWatcher.catch_up)", pipeline, "msg/s"),
                Figure("ratio pipeline / floor", ratio, "", ">= 0.4", ratio >= GOAL_RATIO),
                Figure("pipeline time per message", seconds * 1000 / max(count, 1), "ms"),
                *stages.figures(max(count, 1), "message"),
            ],
            [
                "mix: " + ", ".join(f"{kind} {n}" for kind, n in sorted(mix.items())),
                "outcome: " + ", ".join(f"{what} {n}" for what, n in sorted(seen.items())),
                f"floor runs {', '.join(f'{s:.2f}' for s in floors)} s (the faster counts); pipeline "
                f"{seconds:.1f} s for {count} new messages",
                f"seeding {len(reports)} sent reports took {seeding:.1f} s, LMTP delivery {delivery:.1f} s "
                "(neither timed)",
                "store: SQLite (WAL, synchronous=FULL) on disk; raw messages gpg-encrypted at rest (real "
                f"gpg, a {args.key} key); Dovecot maildir on tmpfs",
                "the next group is stored and read while this one is ingested (the first group's store in a "
                "thread, the rest in worker processes, not timed here): those stages overlap ingest",
            ],
        )
        if profiler:
            print_profile(profiler)


if __name__ == "__main__":
    main()
