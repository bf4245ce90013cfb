"""Ids reserved ahead of their rows on PostgreSQL (from the table's sequence): the checks of
tests/unit/store/test_row_ids.py, each on a fresh database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from tests.support.postgres import Postgres
from tests.unit.store.test_row_ids import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__[6:] for check in CHECKS])
def test_reserved_row_ids_on_postgres(postgres: Postgres, check: Callable[[Engine], None]) -> None:
    with postgres.upgraded("row_ids") as engine:
        check(engine)
