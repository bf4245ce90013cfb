from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.core.identity import nino_hmac
from parsers.errors import InvalidNino
from parsers.nino import find_ninos, is_valid_nino, normalise_nino


@pytest.mark.parametrize(
    ("text", "expected"),
    [("AB 12 34 56 C", "AB123456C"), ("ab123456d", "AB123456D"), (" JG 10 37 29 A ", "JG103729A")],
)
def test_valid_numbers_are_normalised(text: str, expected: str) -> None:
    assert normalise_nino(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "AB12345C",
        "AB1234567C",
        "AB123456E",
        "DA123456A",
        "FA123456A",
        "IA123456A",
        "QA123456A",
        "UA123456A",
        "VA123456A",
        "AD123456A",
        "AO123456A",
        "BG123456A",
        "GB123456A",
        "NK123456A",
        "KN123456A",
        "TN123456A",
        "NT123456A",
        "ZZ123456A",
        "A1123456A",
        "AB-12-34-56-C",
    ],
)
def test_invalid_numbers_are_refused_without_echo(text: str) -> None:
    with pytest.raises(InvalidNino) as caught:
        normalise_nino(text)
    assert text.strip() == "" or text not in str(caught.value)
    assert not is_valid_nino(text)


def test_find_in_text_ignores_longer_tokens_and_bad_prefixes() -> None:
    text = "Customer AB 12 34 56 C, ref XAB123456CX, old GB123456A, again ab123456c."
    assert find_ninos(text) == ("AB123456C",)


def test_hmac_is_keyed_and_stable() -> None:
    key = b"k" * 32
    assert nino_hmac(key, "AB 12 34 56 C") == nino_hmac(key, "ab123456c")
    assert nino_hmac(key, normalise_nino("ab 123456 c")) == nino_hmac(key, "AB123456C")
    assert nino_hmac(key, "AB123456C") != nino_hmac(b"j" * 32, "AB123456C")
    with pytest.raises(ValueError, match="at least 32"):
        nino_hmac(b"short", "AB123456C")


@given(st.text(max_size=40))
def test_normalise_only_raises_invalid_nino(text: str) -> None:
    try:
        result = normalise_nino(text)
    except InvalidNino:
        return
    assert len(result) == 9 and is_valid_nino(result)
