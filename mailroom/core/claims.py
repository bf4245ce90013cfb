"""What the outbox takes out of the queue: a claim on one row under a lease, and the feed that claims rows a
chunk at a time for one pass. Pure: the claiming itself is the caller's function."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class Claim:
    """What a worker needs to send one row, taken out of the database under a lease."""

    table: Literal["submission", "notice"]
    id: int
    message_id: str
    attempt: int
    lease_until: datetime


class ClaimFeed:
    """Claims rows a chunk at a time as the sender needs them, up to the pass's limit, and remembers
    which claims are still out so that a pass that ends early can hand them back.

    `take` runs in worker threads, one call at a time; `handled` and `close` run on the event loop.
    """

    def __init__(self, claim: Callable[[int], list[Claim]], *, chunk: int, limit: int) -> None:
        self._claim = claim
        self._chunk = chunk
        self._left = limit
        self._closed = False
        self._buffer: deque[Claim] = deque()
        self._out: dict[tuple[str, int], Claim] = {}

    def take(self, count: int) -> list[Claim]:
        if len(self._buffer) < count and not self._closed and self._left > 0:
            wanted = min(self._chunk, self._left)
            claims = self._claim(wanted)
            if len(claims) < wanted:
                self._closed = True  # the queue has nothing more due
            self._left -= len(claims)
            self._buffer.extend(claims)
            self._out.update(((c.table, c.id), c) for c in claims)
        return [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]

    def handled(self, claim: Claim) -> None:
        self._out.pop((claim.table, claim.id), None)

    def close(self) -> None:
        """Claim nothing more in this pass."""
        self._closed = True

    @property
    def outstanding(self) -> list[Claim]:
        return list(self._out.values())
