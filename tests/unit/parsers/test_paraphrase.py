"""The paraphrase corpus read by the classifier alone (the pipeline's figures are in tests/unit/service).

Written apart from the rules: rejections in wordings no default phrase contains, and look-alikes that must
never read as a rejection. Each message is checked on its own so a failure names the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parsers.classify import classify
from parsers.message import parse_message
from parsers.phrases import DEFAULT_REJECTION_PHRASES
from parsers.sentences import any_match
from parsers.types import ClassifyPolicy, Kind

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "paraphrase"
SAMPLES = sorted(CORPUS.glob("*.eml"))
POLICY = ClassifyPolicy.default()


def meta(sample: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(sample.with_suffix(".json").read_text(encoding="utf-8"))
    return loaded


REJECTIONS = [s for s in SAMPLES if meta(s)["expect"] == "rejection"]
LOOK_ALIKES = [s for s in SAMPLES if meta(s)["expect"] == "not_rejection"]


def test_the_corpus_is_big_enough() -> None:
    assert len(REJECTIONS) >= 60 and len(LOOK_ALIKES) >= 60


@pytest.mark.parametrize("sample", REJECTIONS, ids=lambda p: p.stem)
def test_a_rejection_is_read_as_one_or_reaches_a_person(sample: Path) -> None:
    result = classify(parse_message(sample.read_bytes()), POLICY)
    assert result.kind is Kind.REJECTION or result.review is not None, result.rules


@pytest.mark.parametrize("sample", LOOK_ALIKES, ids=lambda p: p.stem)
def test_a_look_alike_is_never_a_rejection(sample: Path) -> None:
    result = classify(parse_message(sample.read_bytes()), POLICY)
    assert result.kind is not Kind.REJECTION, (result.rules, result.cues)


def test_rejections_are_not_the_stock_phrases() -> None:
    # The corpus measures the scored reading: at least 60 rejections must escape the phrase list.
    stock = [
        s.stem
        for s in REJECTIONS
        if any_match(DEFAULT_REJECTION_PHRASES, parse_message(s.read_bytes()).new_text)
    ]
    assert len(REJECTIONS) - len(stock) >= 60, stock


def test_figures() -> None:
    read = sum(classify(parse_message(s.read_bytes()), POLICY).kind is Kind.REJECTION for s in REJECTIONS)
    false = sum(classify(parse_message(s.read_bytes()), POLICY).kind is Kind.REJECTION for s in LOOK_ALIKES)
    print(
        f"\nclassifier alone: {read}/{len(REJECTIONS)} rejections read as rejection, "
        f"{false}/{len(LOOK_ALIKES)} look-alikes read as rejection"
    )
    assert false == 0 and read >= 0.9 * len(REJECTIONS)
