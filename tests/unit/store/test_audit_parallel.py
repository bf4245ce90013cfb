"""`audit verify` split across worker processes finds what one process finds, in the same order: an edited
field, a deleted event, a swapped pair and a broken link, anywhere, including at the edges of the runs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mailroom.store import audit
from mailroom.store.engine import transaction
from tests.unit.store.test_audit_fast import write_events

N, BATCH = 24, 5  # runs [1, 6), [6, 11), ...: 5, 6, 10, 11 sit at their edges


def both(engine: Engine, since: int = 0) -> tuple[int, list[str]]:
    with transaction(engine) as session:
        single = audit.verify_stream(session, batch=BATCH, since=since, workers=1)
        parallel = audit.verify_stream(session, batch=BATCH, since=since, workers=2)
        reference = audit.verify(audit.all_events(session)) if not since else None
    assert parallel == single
    if reference is not None:
        assert single[1] == reference
    return parallel


def run(engine: Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))


@pytest.mark.parametrize("seq", [1, 5, 6, 10, 11, 24])
def test_an_edited_field_is_found_the_same_in_parallel(engine: Engine, seq: int) -> None:
    write_events(engine, N)
    assert both(engine) == (N, [])
    run(engine, f"UPDATE audit_events SET actor = 'mallory' WHERE seq = {seq}")
    assert both(engine) == (N, [f"event {seq} was changed after it was written"])


@pytest.mark.parametrize("seq", [1, 5, 6, 10, 11, 24])
def test_a_deleted_event_is_found_the_same_in_parallel(engine: Engine, seq: int) -> None:
    write_events(engine, N)
    run(engine, f"DELETE FROM audit_events WHERE seq = {seq}")
    count, problems = both(engine)
    assert count == N - 1 and (problems != [] or seq == N)


@pytest.mark.parametrize("seq", [1, 5, 10, 11, 23])
def test_a_swapped_pair_is_found_the_same_in_parallel(engine: Engine, seq: int) -> None:
    write_events(engine, N)
    a, b = seq, seq + 1
    run(
        engine,
        f"UPDATE audit_events SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_events SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_events SET seq = {b} WHERE seq = -1",
    )
    count, problems = both(engine)
    assert count == N and problems


@pytest.mark.parametrize("seq", [2, 5, 6, 11, 24])
def test_a_broken_link_is_found_the_same_in_parallel(engine: Engine, seq: int) -> None:
    write_events(engine, N)
    run(engine, f"UPDATE audit_events SET prev_hash = '{'1' * 64}' WHERE seq = {seq}")
    count, problems = both(engine)
    assert count == N and f"event {seq} does not follow the event before it" in problems


def test_several_breaks_and_a_gap_across_runs_and_since(engine: Engine) -> None:
    write_events(engine, N)
    run(
        engine,
        "DELETE FROM audit_events WHERE seq BETWEEN 6 AND 12",  # a whole run and more missing
        "UPDATE audit_events SET to_state = 'met' WHERE seq = 16",
        "UPDATE audit_events SET prev_hash = 'x' WHERE seq = 21",
    )
    count, problems = both(engine)
    assert count == N - 7 and problems[0] == "event 6 is missing (next found is 13)"
    assert both(engine, since=13)[1] == [
        "event 16 was changed after it was written",
        "event 21 does not follow the event before it",
        "event 21 was changed after it was written",
    ]
