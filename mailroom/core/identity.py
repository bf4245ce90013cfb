"""The NI number is never stored: only an HMAC-SHA256 under the provider's own key, for matching.

A keyed hash (not a plain hash) because NI numbers are few enough to enumerate: without the key, the
stored value says nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from mailroom.core.errors import Conflict

MIN_KEY_LENGTH = 32


def nino_hmac(key: bytes, nino: str) -> str:
    """HMAC-SHA256 of an NI number already checked and normalised (parsers.nino.normalise_nino), hex.

    Spaces and case are folded again here, so one number can never have two digests.
    """
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"the NI-number HMAC key must be at least {MIN_KEY_LENGTH} bytes")
    return hmac.new(key, "".join(nino.split()).upper().encode("utf-8"), hashlib.sha256).hexdigest()


def case_ref_hash(case_ref: str) -> str:
    """What a tombstone keeps of an erased case's reference: enough to recognise it, not to read it."""
    return hashlib.sha256(case_ref.upper().encode("utf-8")).hexdigest()


def normalise_case_ref(case_ref: str) -> str:
    return case_ref.strip().upper()


def erased_refusal(case_ref: str, erased_at: datetime | None, request_ref: str) -> Conflict:
    """The refusal for anything asked of an erased case; its tombstone is all that is left of it."""
    on = erased_at.date().isoformat() if erased_at else "an unknown day"
    return Conflict(
        f"case {normalise_case_ref(case_ref)} was erased on {on} (request {request_ref}); "
        "nothing can be added or sent for it"
    )
