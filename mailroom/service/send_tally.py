"""How SMTP attempts ended in this process, by result and SMTP reply class: the metrics' send counters.

Counts since the process started, as Prometheus counters are; the database keeps each report's truth.
"""

from __future__ import annotations

import threading
from collections import Counter

from outbox.errors import (
    PartialDelivery,
    PermanentSendError,
    RelayUnavailable,
    SendError,
    TransientSendError,
    UnconfirmedSend,
)

_lock = threading.Lock()
_counts: Counter[tuple[str, str]] = Counter()


def count_send(error: SendError | None, *, code: int | None = None) -> None:
    """One attempt: `error` None when the relay accepted it (`code` its reply, 250 if not given)."""
    if error is None:
        result, code = "sent", code or 250
    elif isinstance(error, PartialDelivery):
        result, code = "partial", error.code
    elif isinstance(error, UnconfirmedSend):
        result, code = "unconfirmed", error.code  # the relay may have it: resent with the same Message-ID
    elif isinstance(error, RelayUnavailable):
        result, code = "unavailable", error.code
    elif isinstance(error, TransientSendError):
        result, code = "temporary", error.code
    elif isinstance(error, PermanentSendError):
        result, code = "permanent", error.code
    else:
        result, code = "refused", error.code
    smtp_class = f"{code // 100}xx" if code else "none"
    with _lock:
        _counts[(result, smtp_class)] += 1


def send_counts() -> dict[tuple[str, str], int]:
    with _lock:
        return dict(_counts)
