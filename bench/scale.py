"""Years of history: every operator command and the daemon's periodic work timed on a big database (issue 13).

    .venv/bin/python bench/scale.py                 # 100,000 cases, 300,000 submissions, 1,000,000 inbound
    .venv/bin/python bench/scale.py --scale 0.1     # a tenth of that, for a quick look
    .venv/bin/python bench/scale.py --only sqlite   # or --only postgres

The history is written straight through the store's tables (bench/scale_data.py): cases, submissions in
every state, their clocks (open ones planned and swept by the core), escalations and notices, DWP's replies
and the rest of the inbox, and a valid hash-chained audit trail (~5,000,000 events at full size). The same
rows go into SQLite (on disk, WAL, synchronous=FULL) and into a throwaway PostgreSQL cluster started the way
the tests start it (tests/support/postgres.py). Then each command runs as a whole process, as an operator
would run it (`.venv/bin/mailroom --config ...`), best of two runs (`audit verify` of three), with its
peak RSS, then once more handed to a command server as beside a running daemon ("(served)"); the
daemon's deadline sweep and outbox pass are timed inside a process built by `mailroom.daemon.app.build`,
whose RSS is taken after a day's worth of its periodic work (2,880 sweeps would take too long; it runs
`--passes` of each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import BenchConfig, Figure, print_table, workdir  # noqa: E402

MAILROOM = Path(sys.executable).with_name("mailroom")
GNU_TIME = Path("/usr/bin/time").exists()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (1.0 = the issue's sizes)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument("--passes", type=int, default=30, help="sweeps and outbox passes before the RSS")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--probe", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(Path(args.probe), args.passes)
    return run(args)


def run(args: argparse.Namespace) -> int:
    from bench.scale_data import Size, build
    from mailroom.edges.configfile import load_settings
    from mailroom.store.engine import make_engine, upgrade
    from tests.support.postgres import Postgres

    size = Size.scaled(args.scale)
    now = datetime.now(UTC)
    with workdir(args.keep) as root:
        postgres = Postgres() if args.only != "sqlite" else None
        try:
            configs: dict[str, Path] = {}
            if args.only != "postgres":
                configs["SQLite"] = _config(root, "sqlite", None)
            if postgres is not None:
                postgres.start()
                configs["PostgreSQL"] = _config(root, "postgres", postgres.url)
            engines = []
            for config in configs.values():
                engine = make_engine(load_settings(config).store.url)
                upgrade(engine)
                engines.append(engine)
            settings = load_settings(next(iter(configs.values())))
            started = time.monotonic()
            history = build(settings, size, now, engines, lambda line: print(f"  ... {line}", flush=True))
            built = time.monotonic() - started
            for engine in engines:
                engine.dispose()
            counts = history.counts.rows
            print(
                f"history written to {len(engines)} database(s) in {built:.0f} s: "
                + ", ".join(f"{n:,} {table}" for table, n in counts.items())
            )
            for name, config in configs.items():
                figures, notes = measure(config, history.sample_refs, now, args.passes)
                notes = [*notes, f"history: {_sizes(counts)}; built in {built:.0f} s (both databases)"]
                print_table(f"bench/scale.py, {name}, scale {args.scale}", figures, notes)
        finally:
            if postgres is not None:
                postgres.close()
    return 0


def _config(root: Path, name: str, url: str | None) -> Path:
    folder = root / name
    folder.mkdir()
    config = BenchConfig.base(folder)
    if url is not None:
        config.set("store", url=url)
    config.set("daemon", log_level="ERROR")
    return config.write()


def _sizes(counts: dict[str, int]) -> str:
    keys = ("cases", "submissions", "inbound_messages", "clocks", "escalations", "audit_events")
    return ", ".join(f"{counts.get(k, 0):,} {k}" for k in keys)


# -- whole processes -----------------------------------------------------------------------------------------


def timed(argv: list[str]) -> tuple[float, int, int, str]:
    """Wall seconds, peak RSS (KB), exit code and the last line of output of one process.

    The peak comes from /usr/bin/time (GNU time), whose own small fork runs the command: a child forked
    from this process would count this process's memory (the history's generator) before its exec.
    """
    with tempfile.NamedTemporaryFile(prefix="mrbench-rss-") as rss_file:
        wrapped = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss_file.name, *argv] if GNU_TIME else argv
        started = time.monotonic()
        done = subprocess.run(
            wrapped,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={**os.environ, "COLUMNS": "160"},
        )
        seconds = time.monotonic() - started
        said = Path(rss_file.name).read_text().split() if GNU_TIME else []
    rss = int(said[-1]) if said and said[-1].isdigit() else 0
    tail = done.stdout.decode(errors="replace").strip().splitlines()
    tail = tail or done.stderr.decode(errors="replace").strip().splitlines()
    return seconds, rss, done.returncode, tail[-1] if tail else ""


def measure(config: Path, refs: list[str], now: datetime, passes: int) -> tuple[list[Figure], list[str]]:
    base = [str(MAILROOM), "--config", str(config)]
    month_end = now.date()
    commands: list[tuple[str, list[str], float, int]] = [
        ("mailroom --help", [str(MAILROOM), "--help"], 0.25, 3),
        ("queue", [*base, "queue"], 0.5, 2),
        ("queue --state deferred", [*base, "queue", "--state", "deferred"], 0.5, 2),
        ("case show REF", [*base, "case", "show", refs[1]], 0.5, 2),
        ("inbox", [*base, "inbox"], 0.5, 2),
        ("clocks", [*base, "clocks"], 0.5, 2),
        (
            "clocks --as-of DATE",
            [*base, "clocks", "--as-of", (now + timedelta(days=3)).date().isoformat()],
            0.5,
            2,
        ),
        ("escalations", [*base, "escalations"], 0.5, 2),
        (
            "report mi, a month",
            [
                *base,
                "report",
                "mi",
                "--from",
                (month_end - timedelta(days=30)).isoformat(),
                "--to",
                month_end.isoformat(),
            ],
            2.0,
            2,
        ),
        (
            "report mi, a year",
            [
                *base,
                "report",
                "mi",
                "--from",
                (month_end - timedelta(days=365)).isoformat(),
                "--to",
                month_end.isoformat(),
            ],
            2.0,
            2,
        ),
        ("erase REF", [*base, "erase", refs[2], "--request-ref", "ER-BENCH-1", "--yes"], 1.0, 1),
        ("audit verify", [*base, "audit", "verify"], 0.0, 3),  # best of 3: this VM swings ±30 % run to run
    ]
    figures: list[Figure] = []
    notes: list[str] = []
    peak = (0, "")
    for name, argv, goal, runs in commands:
        best, rss, code, said = min(timed(argv) for _ in range(runs))
        if rss > peak[0]:
            peak = (rss, name)
        if code != 0:
            notes.append(f"{name}: exit {code}: {said[:150]}")
        if name == "audit verify":
            events = _events_in(said)
            figures.append(Figure(name, best, "s"))
            rate = events / best if best else 0.0
            figures.append(Figure("  audit verify rate", rate, "events/s", ">= 500,000", rate >= 500_000))
            figures.append(Figure("  audit verify peak RSS", rss / 1024, "MB"))
            continue
        figures.append(Figure(name, best, "s", f"<= {goal:g} s", best <= goal))
    figures += served(config, commands, refs)
    daemon = json.loads(timed([sys.executable, __file__, "--probe", str(config), "--passes", str(passes)])[3])
    figures += [
        Figure("deadline sweep (in the daemon)", daemon["sweep"], "s", "<= 0.2 s", daemon["sweep"] <= 0.2),
        Figure(
            "outbox pass, nothing due (in the daemon)",
            daemon["outbox"] * 1000,
            "ms",
            "<= 50 ms",
            daemon["outbox"] <= 0.05,
        ),
        Figure(
            f"daemon RSS after {passes} sweeps + passes",
            daemon["rss_mb"],
            "MB",
            "<= 100 MB",
            daemon["rss_mb"] <= 100,
        ),
        Figure(f"largest process peak RSS ({peak[1]})", peak[0] / 1024, "MB"),
    ]
    notes.append(
        f"first sweep {daemon['first_sweep']:.3f} s, first outbox pass {daemon['first_outbox'] * 1000:.1f} ms"
    )
    return figures, notes


def served(config: Path, commands: list[tuple[str, list[str], float, int]], refs: list[str]) -> list[Figure]:
    """The same commands handed to a command server, as they run beside a daemon configured as the
    example config is (`[daemon] command_socket`; docs/operations.md §12)."""
    from mailroom.daemon.command_server import CommandServer
    from tests.support.commands import socket_path
    from tests.support.daemon import wait_until

    socket = socket_path()
    text = config.read_text()
    with_socket = config.with_name("served.toml")
    with_socket.write_text(text.replace("[daemon]\n", f'[daemon]\ncommand_socket = "{socket}"\n', 1))
    server = CommandServer.start(socket)
    assert server is not None
    figures: list[Figure] = []
    try:
        wait_until(socket.exists, "the command server's socket", timeout=60)
        for name, argv, goal, runs in commands:
            if not goal or "--config" not in argv:
                continue  # `--help` always runs in its own process; audit verify has no time goal
            argv = [str(with_socket) if word == str(config) else word for word in argv]
            if name == "erase REF":
                argv = [refs[3] if word == refs[2] else word for word in argv]
            best, _, code, _ = min(timed(argv) for _ in range(runs))
            label = f"{name} (served)"
            figures.append(
                Figure(
                    label if code == 0 else f"{label}: exit {code}", best, "s", f"<= {goal:g} s", best <= goal
                )
            )
    finally:
        server.stop()
    return figures


def _events_in(line: str) -> int:
    for word in line.replace(",", "").split():
        if word.isdigit():
            return int(word)
    return 0


# -- inside the daemon ---------------------------------------------------------------------------------------


def probe(config: Path, passes: int) -> int:
    """Build the daemon's parts as `mailroom run` does; time its sweep and an outbox pass; then its RSS."""
    import logging

    from mailroom.daemon.app import build
    from mailroom.edges.configfile import load_settings

    logging.disable(logging.WARNING)
    parts = build(load_settings(config))

    def sweep() -> float:
        started = time.perf_counter()
        parts.clocks.sweep(parts.engine, parts.now())
        return time.perf_counter() - started

    def outbox() -> float:
        started = time.perf_counter()
        asyncio.run(parts.outbox.run_once())
        return time.perf_counter() - started

    first_sweep, first_outbox = sweep(), outbox()
    sweeps = [sweep() for _ in range(passes)]
    passes_ = [outbox() for _ in range(passes)]
    rss = _rss_mb()
    print(
        json.dumps(
            {
                "first_sweep": first_sweep,
                "first_outbox": first_outbox,
                "sweep": sorted(sweeps)[len(sweeps) // 2],
                "outbox": sorted(passes_)[len(passes_) // 2],
                "rss_mb": rss,
            }
        )
    )
    return 0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
