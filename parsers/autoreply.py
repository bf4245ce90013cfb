"""Machine-sent mail: auto-reply signals (RFC 3834 and the de-facto headers) and delivery reports (RFC 3464).

``is_auto_submitted`` only says *that* a message was sent by a machine; telling DWP's automated
acknowledgement from a person's out-of-office is the classifier's job. ``parse_dsn`` reads standard delivery
status notifications and the common non-standard bounces (Exchange "Undeliverable:", qmail "failure notice",
Sendmail/Postfix without a report part) into the same DeliveryStatus value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message
from email.parser import Parser
from email.policy import compat32

from parsers.refs import find_message_ids
from parsers.types import Attachment, DeliveryStatus, ParsedMessage

__all__ = ["is_auto_submitted", "parse_dsn"]

# Most serious first: a report about two recipients, one failed and one delivered, is a failure.
_ACTION_RANK = ("failed", "delayed", "delivered", "relayed", "expanded")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[- ]?(reply|response)|out of (the )?office|autoreply|"
    r"réponse automatique|abwesenheitsnotiz)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliverable|undelivered mail|undelivered message|delivery status notification|"
    r"delivery (has )?failed|delivery failure|mail delivery failed|returned mail|failure notice|"
    r"delivery delayed|delayed mail|warning: could not send|message not delivered|"
    r"delivery (notification|report)|non[- ]?delivery)",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(
    r"^(mailer-daemon|postmaster|microsoftexchange[0-9a-f]*|mail-daemon)@", re.IGNORECASE
)
_DELAY_WORDS = re.compile(
    r"\b(delayed|still being retried|will (continue to )?(retry|try)|not yet been delivered|"
    r"has not been delivered yet|temporar(y|ily))\b",
    re.IGNORECASE,
)
_QMAIL_RECIPIENT = re.compile(r"^<([^<>\s@]+@[^<>\s]+)>:", re.MULTILINE)
_INLINE_MESSAGE_ID = re.compile(r"^[ \t]*Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


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


def parse_dsn(msg: ParsedMessage) -> DeliveryStatus | None:
    """The delivery status a bounce reports, or None if the message is not a delivery report."""
    report = next((a for a in msg.attachments if a.content_type.endswith("delivery-status")), None)
    if report is not None:
        status = _from_report(report.text, _original_message_id(msg))
        if status is not None:
            return status
    if _looks_like_bounce(msg):
        return _from_prose(msg)
    return None


def _from_report(text: str, original: str | None) -> DeliveryStatus | None:
    blocks = [
        _fields(block) for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if block.strip()
    ]
    recipients = [block for block in blocks if "action" in block]
    if not recipients:
        return None
    action = min((block["action"].lower() for block in recipients), key=_rank)
    chosen = [block for block in recipients if block["action"].lower() == action]
    first = chosen[0]
    return DeliveryStatus(
        action=action,
        status=_status(first.get("status", "")),
        recipients=tuple(
            _address(block.get("final-recipient", "")) for block in chosen if "final-recipient" in block
        ),
        original_message_id=original,
        diagnostic=_typed_value(first.get("diagnostic-code", "")) or None,
    )


def _rank(action: str) -> int:
    return _ACTION_RANK.index(action) if action in _ACTION_RANK else len(_ACTION_RANK)


def _fields(block: str) -> dict[str, str]:
    """One block of "Field: value" lines (continuations unfolded); the first occurrence of a field wins."""
    fields: dict[str, str] = {}
    for line in re.sub(r"\n[ \t]+", " ", block).splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip():
            fields.setdefault(name.strip().lower(), value.strip())
    return fields


def _typed_value(value: str) -> str:
    """The value after an RFC 3464 type prefix: "rfc822; a@b" → "a@b", "smtp; 550 ..." → "550 ..."."""
    kind, semicolon, rest = value.partition(";")
    return rest.strip() if semicolon and " " not in kind.strip() else value.strip()


def _address(value: str) -> str:
    return _typed_value(value).strip("<>").lower()


def _status(value: str) -> str | None:
    match = _STATUS.search(value)
    return match.group(1) if match else None


def _original_message_id(msg: ParsedMessage) -> str | None:
    """The Message-ID of the bounced original, from an attached message or its headers, else the body."""
    for attachment in msg.attachments:
        if attachment.content_type in ("message/rfc822", "message/global", "text/rfc822-headers"):
            found = _attached_message_id(attachment)
            if found:
                return found
    match = _INLINE_MESSAGE_ID.search(msg.text)
    ids = find_message_ids(match.group(1)) if match else ()
    return ids[0] if ids else None


def _attached_message_id(attachment: Attachment) -> str | None:
    headers: Message = Parser(policy=compat32).parsestr(attachment.text, headersonly=True)
    ids = find_message_ids(str(headers.get("Message-ID", "")))
    return ids[0] if ids else None


def _looks_like_bounce(msg: ParsedMessage) -> bool:
    if not _BOUNCE_SUBJECT.match(msg.subject):
        return False
    has_original = any(a.content_type in ("message/rfc822", "text/rfc822-headers") for a in msg.attachments)
    display = (msg.header("From") or "").lower()
    return bool(
        has_original
        or _BOUNCE_SENDER.match(msg.sender)
        or "mail delivery" in display
        or _INLINE_MESSAGE_ID.search(msg.text)
    )


def _from_prose(msg: ParsedMessage) -> DeliveryStatus:
    """A bounce without a machine-readable report: read the action and status from its words."""
    words = f"{msg.subject}\n{msg.text}"
    status = _status(msg.text)
    delayed = (status or "").startswith("4") or (status is None and bool(_DELAY_WORDS.search(words)))
    return DeliveryStatus(
        action="delayed" if delayed else "failed",
        status=status,
        recipients=tuple(dict.fromkeys(address.lower() for address in _QMAIL_RECIPIENT.findall(msg.text))),
        original_message_id=_original_message_id(msg),
        diagnostic=None,
    )
