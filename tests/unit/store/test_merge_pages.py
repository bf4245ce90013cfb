"""`merge_pages`: pages of disjoint listings merged into the page a single query over their union gives."""

from __future__ import annotations

import random

import pytest

from mailroom.store.listings import Page, merge_pages


def page_of(ids: list[int], after: int | None, limit: int) -> Page[dict[str, int]]:
    """What `page_by_id` returns for a listing holding `ids`."""
    beyond = sorted(i for i in ids if after is None or i > after)
    rows = [{"id": i} for i in beyond[:limit]]
    return Page(rows, len(beyond) - len(rows), rows[-1]["id"] if rows else None)


@pytest.mark.parametrize("seed", range(200))
def test_merged_pages_walk_the_union_as_one_listing_would(seed: int) -> None:
    chance = random.Random(seed)
    ids = chance.sample(range(1, 400), chance.randint(0, 120))
    states = [ids[k::3] for k in range(3)]  # three disjoint listings
    limit = chance.randint(1, 30)
    after: int | None = chance.choice([None, chance.randint(0, 400)])
    for _ in range(50):  # page on until the end, checking every page
        merged = merge_pages([page_of(s, after, limit) for s in states], limit)
        assert merged == page_of(ids, after, limit)
        if not merged.rows:
            break
        after = merged.last


def test_one_listing_is_its_own_page() -> None:
    only = page_of([3, 1, 2], None, 2)
    assert merge_pages([only], 2) is only
