"""Ids for rows a transaction is about to insert, taken before the rows are.

A new row's id is usually learnt by flushing its INSERT. A catch-up inserts a row a message and records
audit events naming it, then changes the row's state: flushing it early cost an INSERT and an UPDATE
(two trips through the unit of work) where the row, inserted once with its final state, needs one. So
a group takes its ids up front: on PostgreSQL from the table's sequence (ids no other transaction can
take, as gaps if unused); on SQLite the ids above the highest one, which are ours while the transaction
holds the write lock (every transaction here begins IMMEDIATE). Every row of that table the transaction
inserts must then take its id from here, or SQLite may give one of them away twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session


def reserve(session: Session, model: Any, count: int, *, above: int = 0) -> list[int]:
    """`count` ids for new rows of `model` (a table with an integer `id`), in order, each above `above`
    (on SQLite: ids reserved before and not yet inserted, which the table cannot know of)."""
    table: sa.Table = model.__table__
    if count < 1:
        return []
    if session.get_bind().dialect.name == "postgresql":
        sequence = sa.func.pg_get_serial_sequence(table.name, "id")
        query = sa.select(sa.func.nextval(sequence)).select_from(sa.func.generate_series(1, count))
        return sorted(session.execute(query).scalars())
    top = max(session.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0, above)
    return list(range(top + 1, top + 1 + count))


class RowIds:
    """Ids for one table's new rows in one transaction, reserved `block` at a time when first needed (a
    group of messages seen before takes none). `rewind` gives back the ids taken since `position`, for
    a savepoint rolled back (its rows were never inserted)."""

    def __init__(self, session: Session, model: Any, block: int) -> None:
        self._session, self._model, self._block = session, model, max(block, 1)
        self._ids: list[int] = []
        self.position = 0

    def take(self) -> int:
        if self.position == len(self._ids):
            above = self._ids[-1] if self._ids else 0
            self._ids += reserve(self._session, self._model, self._block, above=above)
        self.position += 1
        return self._ids[self.position - 1]

    def rewind(self, position: int) -> None:
        self.position = min(position, self.position)
