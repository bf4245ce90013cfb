"""The store tests' database: a fresh SQLite file at the newest schema, per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from mailroom.store.engine import make_engine, upgrade


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    upgrade(engine)
    yield engine
    engine.dispose()
