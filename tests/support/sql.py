"""Counting the SQL an engine runs, for tests that hold a code path to its number of statements."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@contextmanager
def statements(engine: Engine) -> Iterator[Counter[str]]:
    """How many statements of each kind (its first two words, upper-cased) the engine ran in the block;
    an INSERT is counted under its table too ("INSERT INTO AUDIT_EVENTS")."""
    seen: Counter[str] = Counter()

    def count(*args: object) -> None:
        statement = str(args[2]).split()
        seen[" ".join(statement[:2]).upper()] += 1
        if statement[:2] == ["INSERT", "INTO"] and len(statement) > 2:
            seen[" ".join(statement[:3]).upper()] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def starting(seen: Counter[str], prefix: str) -> int:
    """How many of the counted statements begin with `prefix` (upper-case)."""
    return sum(number for kind, number in seen.items() if kind.startswith(prefix))
