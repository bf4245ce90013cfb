"""References found in inbound mail: Message-IDs, case refs, submission tokens and DWP's own reference.

Everything returns values in order of first appearance without repeats, so the same message always yields
the same answer. Matching (which case, which submission) is the mailroom's job; this module only finds.
"""

from __future__ import annotations

import functools
import re

from parsers.types import ParsedMessage

__all__ = [
    "DEFAULT_CASE_REF_PATTERN",
    "find_case_refs",
    "find_dwp_reference",
    "find_message_case_refs",
    "find_message_ids",
    "find_message_submission_tokens",
    "find_submission_tokens",
    "searchable_text",
]

DEFAULT_CASE_REF_PATTERN = r"MH-\d{6}"

# A msg-id is "<" id-left "@" id-right ">" (RFC 5322 §3.6.4). Whitespace inside the brackets is obsolete
# folding and is dropped.
_BRACKETED_ID = re.compile(r"<\s*([^<>\s@]+)\s*@\s*([^<>\s]+?)\s*>")
_BARE_ID = re.compile(r"^[^<>\s@()\",;]+@[^<>\s@()\",;]+$")
# The outbox writes "[S-000123]" into every subject; the brackets keep it from matching ordinary text.
# As the outbox writes it ("[S-000123]"), or retyped bare by a person ("Submission S-000123 not accepted").
_SUBMISSION_TOKEN = re.compile(r"\[\s*(S-\d{6,})\s*\]|(?<![\w-])(S-\d{6})(?![\w-])", re.IGNORECASE)
# Conservative on purpose: a label ("reference", "ref", "reference number") right before the value, and the
# value either DWP's ATW-style reference or a bare 6-10 digit number. Case refs (MH-...) and NI numbers have
# letters in them and never match.
_DWP_REFERENCE = re.compile(
    r"\b(?:reference|ref)(?:\s+(?:number|no\.?))?\s*(?:is|:|#|-)?\s*"
    r"(ATW[- ]?\d{5,10}|\d{6,10})(?![\w-])",
    re.IGNORECASE,
)


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def find_message_ids(value: str) -> tuple[str, ...]:
    """The Message-IDs in a Message-ID, In-Reply-To or References value, as ``"<left@right>"``.

    A lone unbracketed ``left@right`` (seen from broken clients) is accepted and bracketed.
    """
    found = [f"<{left}@{right}>" for left, right in _BRACKETED_ID.findall(value)]
    if not found:
        bare = value.strip()
        if _BARE_ID.match(bare):
            found = [f"<{bare}>"]
    return _unique(found)


@functools.lru_cache(maxsize=32)
def _case_ref_regex(pattern: str) -> re.Pattern[str]:
    try:
        # The guards stop "MH-1000012" or "XMH-100001" from yielding a shorter, wrong reference.
        return re.compile(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"case reference pattern is not a valid regular expression: {exc}") from None


def find_case_refs(text: str, pattern: str = DEFAULT_CASE_REF_PATTERN) -> tuple[str, ...]:
    """Case references matching `pattern` (a regex from config), upper-cased, in order, without repeats.

    Raises ValueError when `pattern` is not a valid regular expression.
    """
    return _unique([match.group(0).upper() for match in _case_ref_regex(pattern).finditer(text)])


def find_submission_tokens(text: str) -> tuple[str, ...]:
    """Submission tokens written by the outbox as ``[S-000123]`` (or retyped without the brackets);
    returned as ``"S-000123"``."""
    return _unique([(bracketed or bare).upper() for bracketed, bare in _SUBMISSION_TOKEN.findall(text)])


def find_dwp_reference(text: str) -> str | None:
    """DWP's reference in a notice ("Reference: ATW-123456", "Your reference number is 1234567")."""
    match = _DWP_REFERENCE.search(text)
    if match is None:
        return None
    return re.sub(r"^ATW[- ]?", "ATW-", match.group(1).upper())


def searchable_text(msg: ParsedMessage) -> str:
    """Where references are looked for: subject, new text (no quoted history) and attachment text.

    Attachment text includes PDF text and the headers and body of an attached original (a bounce carries
    our own subject, and so the case ref and submission token).
    """
    parts = [msg.subject, msg.new_text, *(attachment.text for attachment in msg.attachments)]
    return "\n".join(part for part in parts if part)


def find_message_case_refs(msg: ParsedMessage, pattern: str = DEFAULT_CASE_REF_PATTERN) -> tuple[str, ...]:
    """Case references anywhere `searchable_text` looks."""
    return find_case_refs(searchable_text(msg), pattern)


def find_message_submission_tokens(msg: ParsedMessage) -> tuple[str, ...]:
    """Submission tokens in the subject, then in attachment text (the attached original of a bounce)."""
    return find_submission_tokens(searchable_text(msg))
