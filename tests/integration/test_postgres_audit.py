"""`audit verify`'s fast path on PostgreSQL: the checks of tests/unit/store/test_audit_fast.py."""

from __future__ import annotations

from tests.support.postgres import Postgres
from tests.unit.store.test_audit_fast import check_fast_path


def test_the_fast_verify_hashes_as_the_writer_does_and_finds_every_edit_on_postgres(
    postgres: Postgres,
) -> None:
    with postgres.upgraded("audit_fast") as engine:
        check_fast_path(engine)
