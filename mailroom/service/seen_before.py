"""What the database already holds for a fetched group's messages, read with two queries a group.

Ingest is idempotent: before applying a message it looks for a row at the same mailbox UID and for rows
with the same Message-ID (`Inbox._duplicate`). A catch-up ingests a group of 25 in one transaction, so it
asks the database once for all of them (`SeenBefore.load`) instead of twice a message. The answer holds
for a message as long as no earlier message of the group had its UID or Message-ID: rows written in this
transaction are not in it. For such a message `answers` is False and the caller queries as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from mailroom.store.models import InboundMessage


@dataclass
class SeenBefore:
    by_uid: dict[tuple[int, int], InboundMessage]
    by_message_id: dict[str, list[InboundMessage]]
    _uids_done: set[tuple[int | None, int | None]] = field(default_factory=set)
    _ids_done: set[str] = field(default_factory=set)

    @classmethod
    def load(
        cls, session: Session, mailbox: str, uids: Sequence[int], message_ids: Sequence[str]
    ) -> SeenBefore:
        """The rows at these UIDs of `mailbox` (by UIDVALIDITY and UID) and with these Message-IDs (as
        stored: the first 998 characters), each list in the order the rows were written."""
        by_uid: dict[tuple[int, int], InboundMessage] = {}
        if uids:
            rows = session.exec(
                select(InboundMessage)
                .where(InboundMessage.mailbox == mailbox, col(InboundMessage.uid).in_(sorted(set(uids))))
                .order_by(col(InboundMessage.id))
            ).all()
            for row in rows:
                if row.uidvalidity is not None and row.uid is not None:
                    by_uid.setdefault((row.uidvalidity, row.uid), row)
        by_message_id: dict[str, list[InboundMessage]] = {}
        ids = sorted({message_id[:998] for message_id in message_ids})
        if ids:
            rows = session.exec(
                select(InboundMessage)
                .where(col(InboundMessage.message_id).in_(ids))
                .order_by(col(InboundMessage.id))
            ).all()
            for row in rows:
                by_message_id.setdefault(row.message_id, []).append(row)
        return cls(by_uid, by_message_id)

    def answers(self, uidvalidity: int | None, uid: int | None, message_id: str) -> bool:
        return (uidvalidity, uid) not in self._uids_done and message_id[:998] not in self._ids_done

    def at(self, uidvalidity: int, uid: int) -> InboundMessage | None:
        return self.by_uid.get((uidvalidity, uid))

    def with_message_id(self, message_id: str) -> list[InboundMessage]:
        return self.by_message_id.get(message_id[:998], [])

    def done(self, uidvalidity: int | None, uid: int | None, message_id: str) -> None:
        """A message of the group is done: later ones at its UID or with its Message-ID are asked anew."""
        self._uids_done.add((uidvalidity, uid))
        self._ids_done.add(message_id[:998])
