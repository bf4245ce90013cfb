"""`audit verify`'s reading and stitching: the chain split into seq ranges, each range checked by
`audit_check.check_rows` in a worker process of its own (one a CPU) or in this one, and the runs joined in
chain order (each run's first event against the one before it).

It works on a plain DB-API connection, so `mailroom audit verify` needs neither SQLAlchemy nor the models
(~0.3 s of every run); `audit.verify_stream` runs it over an ORM session's connection for `audit
checkpoint` and `--since`. A digest the fast path does not reproduce is only a candidate: `confirm(seq)`,
the reference check through the ORM (`audit._digest`), decides before it is reported, so the fast path can
only ever save time, never hide or invent a break.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mailroom.store import audit_check

GENESIS = "0" * 64
BATCH = 50_000
Checked = tuple[int, tuple[int, str] | None, tuple[int, str] | None, list[audit_check.Found]]
Span = tuple[int, int]


def verify_chain(
    connection: Any,
    dialect: str,
    database: str | None,
    confirm: Callable[[int], bool],
    *,
    since: int = 0,
    expected_prev: str = GENESIS,
    batch: int = BATCH,
    workers: int | None = None,
) -> tuple[int, list[str]]:
    """(events checked, problems) for the events after `since`, the first of which must follow
    `expected_prev`. `database` is what a worker connects to (SQLite's file, PostgreSQL's conninfo), or
    None to check in this process over `connection`; so is a chain of one batch, or a single CPU."""
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT max(seq) FROM audit_events")
        high_seq = cursor.fetchone()[0] or 0
    finally:
        cursor.close()
    spans = [(low, min(low + batch, high_seq + 1)) for low in range(since + 1, high_seq + 1, batch)]
    count = workers if workers is not None else len(os.sched_getaffinity(0))
    if count > 1 and len(spans) > 1 and database is not None:
        setup = {"dialect": dialect, "database": database}
        results = _in_workers(spans, count, setup)
    else:
        results = _in_this_process(connection, dialect, spans)
    return _stitch(results, since + 1, expected_prev, confirm)


def _in_this_process(connection: Any, dialect: str, spans: list[Span]) -> Iterator[Checked]:
    cursor = connection.cursor()
    try:
        for low, high in spans:
            cursor.execute(audit_check.SELECT[dialect], audit_check.bounds(dialect, low, high))
            yield audit_check.check_rows(cursor)
    finally:
        cursor.close()


def _in_workers(spans: list[Span], count: int, setup: dict[str, str]) -> Iterator[Checked]:
    """Range k goes to worker k % count; results come back in range order, at most two a worker ahead."""
    count = min(count, len(spans))
    command = [sys.executable, "-m", "mailroom.store.audit_check"]
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(setup) + "\n")
        ahead = min(len(spans), 2 * count)
        for k in range(ahead):
            _send(procs[k % count], spans[k])
        for k in range(len(spans)):
            proc = procs[k % count]
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"audit verify: a worker stopped (exit {proc.wait()})")
            if k + ahead < len(spans):
                _send(procs[(k + ahead) % count], spans[k + ahead])
            done, first, last, found = json.loads(line)
            yield (
                done,
                tuple(first) if first else None,
                tuple(last) if last else None,
                [tuple(f) for f in found],
            )
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        codes = []
        for proc in procs:
            codes.append(proc.wait(timeout=30))
            assert proc.stdout is not None
            proc.stdout.close()
        if any(codes):
            raise RuntimeError(f"audit verify: a worker failed (exit codes {codes})")


def _send(proc: subprocess.Popen[str], span: Span) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{span[0]} {span[1]}\n")
    proc.stdin.flush()


def _stitch(
    results: Iterable[Checked], expected_seq: int, expected_prev: str, confirm: Callable[[int], bool]
) -> tuple[int, list[str]]:
    """The runs' findings in chain order, with the links between runs; candidates decided by `confirm`."""
    problems: list[str] = []
    total = 0
    for done, first, last, found in results:
        if first is None or last is None:
            continue
        total += done
        if first[0] != expected_seq:
            problems.append(f"event {expected_seq} is missing (next found is {first[0]})")
        if first[1] != expected_prev:
            problems.append(f"event {first[0]} does not follow the event before it")
        for kind, seq, other in found:
            if kind == "missing":
                problems.append(f"event {seq} is missing (next found is {other})")
            elif kind == "follow":
                problems.append(f"event {seq} does not follow the event before it")
            elif not confirm(seq):
                problems.append(f"event {seq} was changed after it was written")
        expected_seq, expected_prev = last[0] + 1, last[1]
    return total, problems
