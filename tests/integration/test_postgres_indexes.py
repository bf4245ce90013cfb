"""Migration 0005 on PostgreSQL: each index serves its query (EXPLAIN, as tests/unit/store/test_indexes.py
does on SQLite), and a database made with the schema before it (0004), rows in it, upgrades losing none."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from mailroom.store.engine import make_engine
from tests.support.postgres import Postgres
from tests.unit.store.test_indexes import PLANS, check_upgrade_from_the_previous_schema, explaining, plan_of


@pytest.fixture(scope="module")
def pg_engine(postgres: Postgres) -> Iterator[Engine]:
    with postgres.upgraded("indexes") as engine:
        yield engine


@pytest.mark.parametrize(("index", "query"), PLANS, ids=[name for name, _ in PLANS])
def test_each_index_serves_its_query_on_postgres(
    pg_engine: Engine, index: str, query: Callable[[], Any]
) -> None:
    with explaining(pg_engine) as connection:
        plan = plan_of(connection, query())
    assert index in plan, plan


def test_a_postgres_database_made_with_the_previous_schema_upgrades_with_its_rows(postgres: Postgres) -> None:
    engine = make_engine(postgres.create_database("from_0004"))
    try:
        check_upgrade_from_the_previous_schema(engine)
    finally:
        engine.dispose()
        postgres.drop_database("from_0004")
