"""`report mi` in SQL on PostgreSQL: the same field-by-field comparison as tests/unit/store/test_mi.py."""

from __future__ import annotations

from tests.support.postgres import Postgres
from tests.unit.store.test_mi import check_sql_matches_python


def test_the_sql_summary_is_the_python_summary_on_postgres(postgres: Postgres) -> None:
    with postgres.upgraded("mi") as engine:
        check_sql_matches_python(engine)
