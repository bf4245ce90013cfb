"""ClaimFeed: rows are claimed a chunk at a time as the sender needs them, never past the pass's limit."""

from __future__ import annotations

from datetime import UTC, datetime

from mailroom.core.claims import Claim, ClaimFeed

LEASE = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)


class Queue:
    """A queue of `due` rows; records the size of every claim asked of it."""

    def __init__(self, due: int) -> None:
        self.next_id = 1
        self.left = due
        self.asked: list[int] = []

    def claim(self, limit: int) -> list[Claim]:
        self.asked.append(limit)
        taken = min(limit, self.left)
        self.left -= taken
        claims = [Claim("submission", self.next_id + i, f"<m{i}@x>", 1, LEASE) for i in range(taken)]
        self.next_id += taken
        return claims


def drain(feed: ClaimFeed, group: int) -> list[int]:
    ids: list[int] = []
    while taken := feed.take(group):
        ids += [claim.id for claim in taken]
        for claim in taken:
            feed.handled(claim)
    return ids


def test_claims_in_chunks_up_to_the_limit() -> None:
    queue = Queue(due=100)
    feed = ClaimFeed(queue.claim, chunk=25, limit=60)
    assert drain(feed, group=8) == list(range(1, 61))
    assert queue.asked == [25, 25, 10]
    assert feed.outstanding == []


def test_a_short_claim_means_the_queue_is_empty_and_no_more_is_asked() -> None:
    queue = Queue(due=7)
    feed = ClaimFeed(queue.claim, chunk=25, limit=500)
    assert drain(feed, group=8) == list(range(1, 8))
    assert queue.asked == [25]


def test_close_stops_claiming_and_what_was_not_handled_stays_outstanding() -> None:
    queue = Queue(due=100)
    feed = ClaimFeed(queue.claim, chunk=25, limit=100)
    first = feed.take(8)
    feed.handled(first[0])
    feed.close()
    rest = [claim.id for claim in feed.take(100)]
    assert rest == list(range(9, 26))  # the chunk already claimed is still handed out, nothing new
    assert queue.asked == [25]
    assert sorted(claim.id for claim in feed.outstanding) == list(range(2, 26))
