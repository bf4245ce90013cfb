"""The bounce corpus read by the bounce reader and classifier alone (linking: tests/unit/service).

Each sample's .json says what a person reading it says is right; a failure names the file. The figures issue
16 asks for are printed by `test_figures`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parsers.classify import classify
from parsers.message import parse_message
from parsers.types import Classification, ClassifyPolicy, Kind

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "bounces"
SAMPLES = sorted(CORPUS.glob("*.eml"))
POLICY = ClassifyPolicy.default()


def meta(sample: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(sample.with_suffix(".json").read_text(encoding="utf-8"))
    return loaded


def read(sample: Path) -> Classification:
    return classify(parse_message(sample.read_bytes()), POLICY)


BOUNCES = [s for s in SAMPLES if meta(s)["expect"] == "bounce"]
OTHERS = [s for s in SAMPLES if meta(s)["expect"] != "bounce"]


def test_the_corpus_is_big_enough() -> None:
    assert len(BOUNCES) >= 150
    kinds = {meta(s)["expect"] for s in OTHERS}
    assert {"auto_reply", "arf"} <= kinds


@pytest.mark.parametrize("sample", BOUNCES, ids=lambda p: p.stem)
def test_a_bounce_is_a_bounce(sample: Path) -> None:
    result = read(sample)
    assert result.kind is Kind.BOUNCE, (result.rules, result.detail)
    assert result.dsn is not None
    expected = meta(sample)
    assert result.dsn.permanent is expected["permanent"], result.dsn
    if expected["original_message_id"] and expected["link"] in ("rfc822", "rfc822-headers", "quoted-headers"):
        assert result.dsn.original_message_id == expected["original_message_id"]


@pytest.mark.parametrize("sample", OTHERS, ids=lambda p: p.stem)
def test_a_look_alike_is_not_a_bounce(sample: Path) -> None:
    result = read(sample)
    # An RFC 3834 auto-reply from the DWP inbox is its automated acknowledgement; nothing here is a rejection.
    allowed = {
        "auto_reply": {Kind.AUTO_REPLY, Kind.ACKNOWLEDGEMENT},
        "arf": {Kind.OTHER},
        "delivered": {Kind.OTHER},
        "other": {Kind.OTHER},
    }[meta(sample)["expect"]]
    assert result.kind in allowed, (result.rules, result.dsn)


def test_figures() -> None:
    results = [(meta(s), read(s)) for s in BOUNCES]
    as_bounce = [(m, r) for m, r in results if r.kind is Kind.BOUNCE and r.dsn is not None]
    as_notice = [m for m, r in results if r.kind in (Kind.REJECTION, Kind.ACKNOWLEDGEMENT)]
    permanence = sum(r.dsn is not None and r.dsn.permanent is m["permanent"] for m, r in as_bounce)
    recipient = sum(
        r.dsn is not None and m["recipient"] in r.dsn.recipients for m, r in as_bounce if m["recipient"]
    )
    named = sum(1 for m, _ in as_bounce if m["recipient"])
    status = sum(r.dsn is not None and r.dsn.status == m["status"] for m, r in as_bounce if m["status"])
    stated = sum(1 for m, _ in as_bounce if m["status"])
    print(f"\nbounce corpus: {len(BOUNCES)} reports, {len(OTHERS)} look-alikes")
    print(f"read as bounce: {len(as_bounce)}/{len(BOUNCES)} = {len(as_bounce) / len(BOUNCES):.1%}")
    print(f"read as rejection or acknowledgement: {len(as_notice)}")
    print(f"permanent vs temporary right: {permanence}/{len(as_bounce)} = {permanence / len(as_bounce):.1%}")
    print(f"failed recipient found: {recipient}/{named} = {recipient / max(named, 1):.1%}")
    print(f"status code right: {status}/{stated} = {status / max(stated, 1):.1%}")
    assert len(as_bounce) >= 0.99 * len(BOUNCES)
    assert as_notice == []
    assert permanence >= 0.98 * len(as_bounce)
