"""Hostile input: parse_message raises nothing but MalformedMessage, and what it returns can be classified.

The corpus seeds the mutations, so the fuzzing starts from real shapes (DSNs, HTML, PDFs, broken MIME).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.classify import classify
from parsers.errors import MalformedMessage
from parsers.message import parse_message
from parsers.refs import find_message_case_refs
from parsers.trust import assess_trust
from parsers.types import ClassifyPolicy, ParsedMessage

CORPUS = sorted((Path(__file__).resolve().parents[2] / "samples" / "mail").glob("*.eml"))
SEEDS = [path.read_bytes() for path in CORPUS if path.stat().st_size < 50_000]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def survive(raw: bytes) -> ParsedMessage | None:
    """Parse without PDFs (pdf.py has its own hostile-input tests), then run everything downstream."""
    try:
        msg = parse_message(raw, read_pdfs=False)
    except MalformedMessage:
        return None
    classify(msg, ClassifyPolicy.default())
    assess_trust(
        msg,
        trusted_domains=("dwp.gov.uk",),
        authserv_ids=("mx.provider.example",),
        require_authentication=True,
    )
    find_message_case_refs(msg)
    return msg


@FUZZ
@given(st.binary(max_size=4_000))
def test_arbitrary_bytes(raw: bytes) -> None:
    survive(raw)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_samples(seed: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(seed)))
    survive(seed[:cut])


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(min_value=0), st.binary(min_size=1, max_size=8)), max_size=6),
)
def test_spliced_samples(seed: bytes, edits: list[tuple[int, bytes]]) -> None:
    raw = bytearray(seed)
    for position, junk in edits:
        at = position % (len(raw) + 1)
        raw[at : at + len(junk)] = junk
    survive(bytes(raw))


HEADER_NAMES = st.sampled_from(
    [
        "From",
        "Subject",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Authentication-Results",
        "Auto-Submitted",
        "To",
    ]
)
HEADER_PIECES = st.sampled_from([*"=?<>@;:\"()\\,. abcqBQ-_/*'\t\u00e9\u0440", "utf-8", "\n ", "=?", "?="])
HEADER_VALUES = st.lists(HEADER_PIECES, max_size=40).map("".join)


@FUZZ
@given(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), min_size=1, max_size=12), st.text(max_size=300))
def test_random_headers(headers: list[tuple[str, str]], body: str) -> None:
    lines = [("Subject", "a message"), *headers, ("From", "a@b.example")]
    raw = "".join(f"{name}: {value}\n" for name, value in lines) + "\n" + body
    msg = survive(raw.encode("utf-8", "surrogatepass"))
    assert msg is not None
    assert all("\n" not in value for _, value in msg.headers)
