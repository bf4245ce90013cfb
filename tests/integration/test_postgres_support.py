"""Smoke test of tests/support/postgres.py: the throwaway cluster the PostgreSQL tests and benches use."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from tests.support.dovecot import port_open
from tests.support.postgres import Postgres

pytestmark = pytest.mark.integration


# -- tests ---------------------------------------------------------------------------------------------------


def test_the_url_reaches_the_ready_database_on_loopback_without_fsync(postgres: Postgres) -> None:
    engine = sa.create_engine(postgres.url)
    with engine.connect() as connection:
        query = "SELECT current_database(), current_setting('fsync'), current_setting('listen_addresses')"
        database, fsync, listen = connection.execute(sa.text(query)).one()
    engine.dispose()
    assert (database, fsync, listen) == ("mailroom_test", "off", "127.0.0.1")
    assert postgres.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")


def test_create_database_gives_an_isolated_database(postgres: Postgres) -> None:
    url = postgres.create_database("isolated_one")
    with psycopg.connect(postgres.dsn("isolated_one"), autocommit=True) as connection:
        connection.execute("CREATE TABLE only_here (id int)")
    with psycopg.connect(postgres.dsn(), autocommit=True) as connection:
        assert connection.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    assert url.endswith("/isolated_one")
    postgres.drop_database("isolated_one")
    assert "isolated_one" not in postgres.databases()


def test_skip_locked_lets_a_second_worker_pass_a_claimed_row(postgres: Postgres) -> None:
    # The outbox claim of design.md §6 relies on this.
    postgres.create_database("claims")
    with psycopg.connect(postgres.dsn("claims"), autocommit=True) as setup:
        setup.execute("CREATE TABLE outbox (id int PRIMARY KEY)")
        setup.execute("INSERT INTO outbox VALUES (1), (2)")
    claim = "SELECT id FROM outbox ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
    with psycopg.connect(postgres.dsn("claims")) as first, psycopg.connect(postgres.dsn("claims")) as second:
        assert first.execute(claim).fetchone() == (1,)
        assert second.execute(claim).fetchone() == (2,)


def test_a_database_name_that_is_not_a_plain_identifier_is_refused(postgres: Postgres) -> None:
    with pytest.raises(ValueError, match="plain database name"):
        postgres.create_database('x"; DROP DATABASE mailroom_test; --')


def test_stop_frees_the_port_and_start_brings_the_data_back(postgres: Postgres) -> None:
    postgres.create_database("survives")
    postgres.stop()
    assert not port_open(postgres.port)
    postgres.start()
    assert "survives" in postgres.databases()
