"""The sample corpus: every tests/samples/mail/*.eml parsed, classified and trust-checked against its .json.

A sample whose .json has "known_wrong" documents a shape the classifier still gets wrong; it is a strict
xfail, so fixing the classifier turns it into a failure until the note is removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parsers.classify import classify
from parsers.message import parse_message
from parsers.nino import find_ninos
from parsers.refs import find_message_case_refs, find_message_submission_tokens, searchable_text
from parsers.trust import assess_trust
from parsers.types import ClassifyPolicy

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "mail"
SAMPLES = sorted(CORPUS.glob("*.eml"))
REQUIRED = (
    "kind",
    "trusted",
    "sender",
    "message_id",
    "in_reply_to",
    "case_refs",
    "reasons",
    "dsn_action",
    "dwp_reference",
)
OPTIONAL = (
    "shape",
    "known_wrong",
    "ninos",
    "submission_tokens",
    "rules_first",
    "dsn_status",
    "dsn_original_message_id",
)


def expected(sample: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(sample.with_suffix(".json").read_text(encoding="utf-8"))
    return loaded


def observed(sample: Path) -> dict[str, Any]:
    msg = parse_message(sample.read_bytes())
    result = classify(msg, ClassifyPolicy.default())
    trust = assess_trust(
        msg,
        trusted_domains=("dwp.gov.uk",),
        authserv_ids=("mx.provider.example",),
        require_authentication=True,
    )
    dsn = result.dsn
    return {
        "kind": str(result.kind),
        "trusted": trust.trusted,
        "sender": msg.sender,
        "message_id": msg.message_id,
        "in_reply_to": msg.in_reply_to,
        "case_refs": list(find_message_case_refs(msg, r"MH-\d{6}")),
        "reasons": list(result.reasons),
        "dsn_action": dsn.action if dsn else None,
        "dwp_reference": result.dwp_reference,
        "ninos": list(find_ninos(searchable_text(msg))),
        "submission_tokens": list(find_message_submission_tokens(msg)),
        "rules_first": result.rules[0],
        "dsn_status": dsn.status if dsn else None,
        "dsn_original_message_id": dsn.original_message_id if dsn else None,
    }


def _param(sample: Path) -> Any:
    note = expected(sample).get("known_wrong")
    marks = [pytest.mark.xfail(reason=note, strict=True)] if note else []
    return pytest.param(sample, id=sample.stem, marks=marks)


@pytest.mark.parametrize("sample", [_param(sample) for sample in SAMPLES])
def test_sample_matches_expected(sample: Path) -> None:
    want = expected(sample)
    got = observed(sample)
    checked = {key: got[key] for key in want if key in got}
    assert checked == {key: want[key] for key in checked}


def test_corpus_has_at_least_sixty_samples() -> None:
    correct = [sample for sample in SAMPLES if "known_wrong" not in expected(sample)]
    assert len(correct) >= 60


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.stem for sample in SAMPLES])
def test_expected_file_has_the_contract_keys(sample: Path) -> None:
    want = expected(sample)
    assert set(REQUIRED) <= set(want)
    assert set(want) <= set(REQUIRED) | set(OPTIONAL)
    assert want["kind"] in ("acknowledgement", "rejection", "bounce", "auto_reply", "other")


def test_message_ids_are_unique_across_the_corpus() -> None:
    ids = [expected(sample)["message_id"] for sample in SAMPLES]
    present = [mid for mid in ids if mid]
    assert len(present) == len(set(present))


def test_every_eml_has_a_json_and_back() -> None:
    assert {p.stem for p in CORPUS.glob("*.json")} == {p.stem for p in SAMPLES}


def test_corpus_covers_every_kind_and_both_trust_outcomes() -> None:
    wants = [expected(sample) for sample in SAMPLES]
    assert {w["kind"] for w in wants} == {"acknowledgement", "rejection", "bounce", "auto_reply", "other"}
    assert {w["trusted"] for w in wants} == {True, False}
