"""Machine-sent mail: auto-reply signals (RFC 3834 and the de-facto headers).

``is_auto_submitted`` only says *that* a message was sent by a machine; telling DWP's automated
acknowledgement from a person's out-of-office is the classifier's job, and delivery reports are
``parsers.bounce``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from parsers.types import ParsedMessage

__all__ = ["is_auto_submitted"]

_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[- ]?(reply|response)|out of (the )?office|autoreply|"
    r"réponse automatique|abwesenheitsnotiz)\b",
    re.IGNORECASE,
)


def _present(value: str) -> bool:
    return bool(value.strip())


def _not_no(value: str) -> bool:
    # RFC 3834 §5: "no" (possibly followed by a comment or parameters) means a person sent it.
    return re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].lower() not in ("", "no")


def _bulk(value: str) -> bool:
    return value.strip().lower() in ("bulk", "junk", "auto_reply", "auto-reply")


def _yes(value: str) -> bool:
    return value.strip().lower() not in ("", "no", "false")


# Header name → does this value mean "sent by a machine"? Checked in this order.
_SIGNAL_HEADERS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("auto-submitted", _not_no),
    ("x-auto-response-suppress", _present),
    ("precedence", _bulk),
    ("x-autoreply", _yes),
    ("x-autorespond", _present),
    ("x-ms-exchange-inbox-rules-loop", _present),
)


def is_auto_submitted(msg: ParsedMessage) -> str | None:
    """The first machine-sent signal found, as "name=value" (e.g. "auto-submitted=auto-replied"), or None."""
    for name, fires in _SIGNAL_HEADERS:
        value = msg.header(name)
        if value is not None and fires(value):
            return f"{name}={_short(value)}"
    match = _AUTO_SUBJECT.match(msg.subject)
    if match:
        return f"subject={_short(match.group(1))}"
    return None


def _short(value: str) -> str:
    return value.strip().lower()[:40]
