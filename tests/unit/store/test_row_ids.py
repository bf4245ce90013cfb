"""Ids reserved ahead of their rows (`mailroom.store.row_ids`): rows inserted with them keep them, the
database's own next id comes after them, and a rewound id is taken again. On PostgreSQL the same checks
run in tests/integration/test_postgres_row_ids.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailroom.store.engine import transaction
from mailroom.store.models import Case
from mailroom.store.row_ids import RowIds, reserve

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _case(ref: str, case_id: int | None = None) -> Case:
    return Case(id=case_id, case_ref=ref, created_at=T0)


def check_reserved_ids_are_new_and_the_next_row_follows_them(engine: Engine) -> None:
    with transaction(engine) as session:
        session.add(_case("AAA-1"))
        session.flush()
        first = list(reserve(session, Case, 3))
        assert len(set(first)) == 3 and min(first) > 0
        for n, case_id in enumerate(first):
            session.add(_case(f"AAA-{n + 2}", case_id))
        session.flush()
        later = _case("AAA-9")  # the database's own next id: above every reserved one
        session.add(later)
        session.flush()
        assert later.id is not None and later.id > max(first)
    with Session(engine) as session:
        ids = {case.case_ref: case.id for case in session.exec(select(Case))}
    assert [ids[f"AAA-{n + 2}"] for n in range(3)] == first
    assert reserve_nothing(engine) == []


def reserve_nothing(engine: Engine) -> list[int]:
    with transaction(engine) as session:
        return list(reserve(session, Case, 0))


def check_row_ids_reserve_a_block_when_needed_and_rewind(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = RowIds(session, Case, 2)
        assert ids.position == 0
        a, b = ids.take(), ids.take()
        mark = ids.position
        c = ids.take()  # a second block
        ids.rewind(mark)
        assert ids.take() == c
        assert len({a, b, c}) == 3
        for n, case_id in enumerate((a, b, c)):
            session.add(_case(f"BBB-{n}", case_id))
    with Session(engine) as session:
        assert sorted(case.id for case in session.exec(select(Case))) == sorted([a, b, c])


CHECKS = [
    check_reserved_ids_are_new_and_the_next_row_follows_them,
    check_row_ids_reserve_a_block_when_needed_and_rewind,
]


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__[6:] for check in CHECKS])
def test_reserved_row_ids_on_sqlite(engine: Engine, check: Callable[[Engine], None]) -> None:
    check(engine)
