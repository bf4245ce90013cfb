"""National Insurance numbers: validate, normalise, and find them in free text.

Format (HMRC NIM39110): two prefix letters, six digits, one suffix letter A-D. The first letter is never
D, F, I, Q, U or V; the second never D, F, I, O, Q, U or V; the prefixes BG, GB, KN, NK, NT, TN and ZZ are
never allocated. Spaces are allowed on input and dropped on output.
"""

from __future__ import annotations

import re

from parsers.errors import InvalidNino

_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_SECOND = "ABCEGHJKLMNPRSTWXYZ"
_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})

_NINO = re.compile(rf"^([{_FIRST}][{_SECOND}])(\d{{6}})([A-D])$")
# In free text the parts may be separated by single spaces ("AB 12 34 56 C"); word boundaries keep a
# longer token (a case reference, a postcode run) from yielding a false match.
_NINO_IN_TEXT = re.compile(
    rf"(?<![A-Za-z0-9])([{_FIRST}][{_SECOND}]) ?(\d{{2}}) ?(\d{{2}}) ?(\d{{2}}) ?([A-D])(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def normalise_nino(text: str) -> str:
    """Return the NI number in canonical form (upper case, no spaces) or raise InvalidNino.

    The error message never repeats the input: it is personal data.
    """
    compact = "".join(text.split()).upper()
    match = _NINO.match(compact)
    if match is None or match.group(1) in _BAD_PREFIXES:
        raise InvalidNino(
            "not a valid National Insurance number (two letters, six digits, a final letter A-D)"
        )
    return compact


def is_valid_nino(text: str) -> bool:
    try:
        normalise_nino(text)
    except InvalidNino:
        return False
    return True


def find_ninos(text: str) -> tuple[str, ...]:
    """Every valid NI number in `text`, normalised, in order of first appearance, without repeats."""
    found: dict[str, None] = {}
    for match in _NINO_IN_TEXT.finditer(text):
        candidate = "".join(match.groups()).upper()
        if candidate[:2] not in _BAD_PREFIXES:
            found.setdefault(candidate, None)
    return tuple(found)
