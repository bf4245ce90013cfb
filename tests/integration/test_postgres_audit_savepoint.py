"""The audit chain across savepoints on PostgreSQL (advisory lock, SAVEPOINT/ROLLBACK TO): the checks of
tests/unit/store/test_audit_savepoint.py, each on a fresh database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from tests.support.postgres import Postgres
from tests.unit.store.test_audit_savepoint import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__[6:] for check in CHECKS])
def test_the_chain_across_savepoints_on_postgres(postgres: Postgres, check: Callable[[Engine], None]) -> None:
    with postgres.upgraded("audit_savepoints") as engine:
        check(engine)
