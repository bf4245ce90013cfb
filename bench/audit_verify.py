"""`mailroom audit verify` on a long chain (issue 13: >= 500,000 events/s, memory flat in the chain's length).

    .venv/bin/python bench/audit_verify.py                        # 200,000 and 1,000,000 events, SQLite
    .venv/bin/python bench/audit_verify.py --sizes 100000 --postgres

Builds each chain through the real `audit.record` path (transactions of 5,000 events, the details a
send, a reply and an admin action record), then times `verify_stream` in this process (single-process
and parallel) and the whole `mailroom audit verify` command as a process, with its peak RSS by GNU time.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import BenchConfig, Figure, print_table, workdir  # noqa: E402
from bench.scale import MAILROOM, timed  # noqa: E402

DETAILS: list[dict[str, Any]] = [
    {},
    {"kind": "acknowledgement", "due_at": "2026-03-30T17:00:00+01:00"},
    {"message_id": "<abc.123@dwp.gov.uk>", "attempt": 2},
    {"reason": "held by ops@example.org"},
]


def build(url: str, n: int) -> None:
    from mailroom.store import audit
    from mailroom.store.engine import make_engine, transaction, upgrade

    engine = make_engine(url)
    upgrade(engine)
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    done = 0
    while done < n:
        with transaction(engine) as session:
            for i in range(done, min(n, done + 5_000)):
                audit.record(
                    session,
                    at=t0 + timedelta(seconds=i, microseconds=i % 997),
                    actor="daemon:outbox" if i % 5 else "ops@example.org",
                    entity="submission",
                    entity_id=1 + i // 3,
                    action=("queued", "sent", "acknowledged")[i % 3],
                    from_state=None if i % 3 == 0 else "queued",
                    to_state="sent",
                    detail=DETAILS[i % len(DETAILS)],
                )
        done = min(n, done + 5_000)
    engine.dispose()


def in_process(url: str, workers: int | None) -> tuple[float, int]:
    from mailroom.store import audit
    from mailroom.store.engine import make_engine, transaction

    engine = make_engine(url)
    best = float("inf")
    count = 0
    for _ in range(2):
        started = time.perf_counter()
        with transaction(engine) as session:
            count, problems = audit.verify_stream(session, workers=workers)
        best = min(best, time.perf_counter() - started)
        assert not problems, problems[:3]
    engine.dispose()
    return best, count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200000,1000000", help="chain lengths, comma-separated")
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL cluster")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with workdir(args.keep) as root:
        targets: list[tuple[str, str | None]] = [("SQLite", None)]
        postgres = None
        if args.postgres:
            from tests.support.postgres import Postgres

            postgres = Postgres()
            postgres.start()
        try:
            if postgres is not None:
                targets.append(("PostgreSQL", "pg"))
            for label, kind in targets:
                figures: list[Figure] = []
                for n in sizes:
                    folder = root / f"{label}-{n}"
                    folder.mkdir()
                    config = BenchConfig.base(folder)
                    if kind is not None and postgres is not None:
                        config.set("store", url=postgres.create_database(f"verify_{n}"))
                    config.set("daemon", log_level="ERROR")
                    path = config.write()
                    url = str(config.sections["store"]["url"])
                    started = time.monotonic()
                    build(url, n)
                    print(f"  {label}: built {n:,} events in {time.monotonic() - started:.1f} s", flush=True)
                    for workers in (1, None):  # None: the default, a worker process a CPU
                        seconds, count = in_process(url, workers)
                        name = "single process" if workers == 1 else "parallel (default)"
                        figures.append(Figure(f"{n:,}: verify_stream, {name}", count / seconds, "events/s"))
                    runs = [
                        timed([str(MAILROOM), "--config", str(path), "audit", "verify"]) for _ in range(2)
                    ]
                    seconds, rss, code, said = min(runs)
                    assert code == 0 and said.startswith(f"{n} events"), said
                    figures.append(
                        Figure(
                            f"{n:,}: mailroom audit verify (process)",
                            n / seconds,
                            "events/s",
                            ">= 500,000",
                            n / seconds >= 500_000,
                        )
                    )
                    figures.append(Figure(f"{n:,}: mailroom audit verify peak RSS", rss / 1024, "MB"))
                print_table(f"audit verify, {label}", figures)
        finally:
            if postgres is not None:
                postgres.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
