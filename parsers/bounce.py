"""Delivery reports (bounces): is this message one, and what does it say? Read before any other rule.

A bounce carries our own report, so its words ("rejected", "received", our subject and case reference)
would satisfy the rejection and acknowledgement rules. Reading it first, as its own step, makes a delivery
report a bounce whatever it says. Three readers, most reliable first:

1. ``report``: an RFC 3464 report part (``message/delivery-status`` or ``message/global-delivery-status``),
   read leniently: ``Action: failure``, ``error``, ``expired``, ``failed (bad destination ...)``, a missing
   ``Status`` (taken from ``Diagnostic-Code``), field names in any case.
2. a vendor's fixed wording (Exim, qmail, Postfix, Sendmail, Exchange, Microsoft 365, Gmail, Amazon SES,
   Mimecast, MessageLabs, Trend Micro, Domino, GroupWise, OpenSMTPD, and generic "could not be delivered"),
   in a message a mail system sent;
3. ``smtp-reply``: a mail system's message with a bounce subject or an SMTP reply line (``550 5.1.1 ...``).

"A mail system sent it" is evidence from the envelope and headers, never from the words alone: a sender
such as MAILER-DAEMON@, postmaster@ or MicrosoftExchange...@, a display name such as "Mail Delivery
System", a null Return-Path, or a bounce subject that is not a reply ("RE: Undeliverable: ..." written by a
person is a person's mail). RFC 3834 auto-replies are not bounces, and RFC 5965 abuse reports
(``is_abuse_report``) are neither bounces nor rejections.
"""

from __future__ import annotations

import json
import re
from email.message import Message
from email.parser import Parser
from email.policy import compat32

from parsers.autoreply import is_auto_submitted
from parsers.refs import find_message_ids
from parsers.types import Attachment, DeliveryStatus, ParsedMessage

__all__ = ["is_abuse_report", "parse_dsn"]

# Most serious first: a report about two recipients, one failed and one delivered, is a failure.
_ACTION_RANK = ("failed", "delayed", "delivered", "relayed", "expanded")
# Lenient Action values (RFC 3464 §2.3.3 says failed|delayed|delivered|relayed|expanded; mailers differ).
_ACTION_WORDS = {
    "failed": "failed",
    "failure": "failed",
    "fail": "failed",
    "error": "failed",
    "expired": "failed",
    "bounced": "failed",
    "rejected": "failed",
    "undeliverable": "failed",
    "delayed": "delayed",
    "delay": "delayed",
    "deferred": "delayed",
    "delivered": "delivered",
    "relayed": "relayed",
    "expanded": "expanded",
}
_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)")
# An SMTP reply line: "550 5.1.1 <a@b>: ...", "552-5.2.2 ...", "#550 5.4.1 ...", "550 User unknown".
_SMTP_REPLY = re.compile(r"(?<![\w.])#?([45][0-5]\d)(?:[ -]+([45]\.\d{1,3}\.\d{1,3}))?[ -]+\S[^\n]{2,}")
# The same at the start of a line, after at most a short label ("Reason:", "Remote response:", "Причина:").
_SMTP_REPLY_LINE = re.compile(r"^[ \t]*(?:[^\W\d][\w ]{0,24}:[ \t]*)?#?[45][0-5]\d[ -]+\S", re.MULTILINE)
_LOCAL_CHAR = r"A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
# The lookbehind keeps a greedy prefix from starting an address mid-word ("accesstowork.mhs" + "s@...").
_ADDR = rf"(?<![{_LOCAL_CHAR}])[{_LOCAL_CHAR}]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_ANY_ADDRESS = re.compile(_ADDR)

_SYSTEM_LOCAL_PART = re.compile(
    r"^(mailer-daemon|mail-daemon|maildaemon|post_?master|microsoftexchange[0-9a-f]*|mdaemon|mail-?router|"
    r"mail-?delivery|mailer|bounces?|mail-?system|smtp|mta|mimecast|notes-?router)([+._-].*)?$",
    re.IGNORECASE,
)
_SYSTEM_NAME = re.compile(
    r"\b(mail deliver(y)? (system|subsystem|service)|mailer[- ]daemon|postmaster|ndr|mail administrator|"
    r"system administrator|mail router|mail system|mail delivery|microsoft outlook|mimecast|messagelabs|"
    r"delivery status notification|mailer)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliverable|undelivered mail|undelivered message|delivery status notification|"
    r"delivery (has )?failed|delivery failure|mail delivery failed|returned mail|failure notice|"
    r"delivery delayed|delayed mail|warning: could not send|warning: message \S+ delayed|"
    r"message not delivered|message delivery failure|delivery (notification|report)|non[- ]?delivery|"
    r"nondeliverable|undeliverable message|mail system error|message status - undeliverable|"
    r"mimecast undeliverable|returned message|delivery problem|could not send message|"
    r"недоставленное сообщение|сообщение не (может быть )?доставлено|не удалось доставить|"
    r"(error|failure) delivering|mail delivery (error|problem)|mail fail(ure|ed)|fail(ed|ure) delivery|"
    r"delivery status report|メールエラー通知|配信エラー|送信エラー|エラーメール)",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(
    r"^\s*(delayed mail|delivery delayed|delivery status notification \(delay\)|warning: could not send|"
    r"warning: message \S+ delayed|message delayed|delivery delay|delivery status notification: delay)",
    re.IGNORECASE,
)
_DELAY_TEXT = re.compile(
    r"\b(this is (just |only )?a warning|warning only|will (continue to |keep )?(retry|try|attempt)|"
    r"still being retried|(do not|don't|not) need to resend|no action is required|has been delayed|"
    r"(is|was) delayed|not yet been delivered|has not been delivered yet|delivery (attempts )?will continue|"
    r"will be retried|will retry|retrying|temporar(y|ily) (deferred|unable|failure|problem))\b",
    re.IGNORECASE,
)
_GIVE_UP = re.compile(
    r"\b(gave up|giving up|permanent(ly)?|fatal|has been returned|returning message|could not be delivered|"
    r"couldn't be delivered|wasn't delivered|was not delivered|delivery has failed|failed permanently|"
    r"retry (timeout|time|period) (exceeded|expired)|message expired|no further (attempts|retries)|"
    r"(has|have) failed)\b",
    re.IGNORECASE,
)
# (reader, wording only that mail system writes). Informative: which reader decided, in `parse --json`.
_VENDOR_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("exim", r"this message was created automatically by mail delivery software"),
        ("qmail", r"hi\. this is the qmail-send program"),
        ("postfix", r"this is the mail system at host|i'm sorry to have to inform you that your message"),
        ("sendmail", r"-+\s*transcript of session follows\s*-+|the original message was received at"),
        ("opensmtpd", r"this is the mailer-daemon, please do not reply"),
        ("m365", r"your message to \S+ couldn't be delivered|prod\.outlook\.com"),
        (
            "exchange",
            r"delivery has failed to these recipients|did not reach some or all of the intended recipients|"
            r"did not reach the following recipient|"
            r"diagnostic information for administrators|generating server:",
        ),
        ("gmail", r"your message wasn't delivered to|address not found|the response from the remote server"),
        ("ses", r"an error occurred while trying to deliver the mail to the following recipients"),
        ("messagelabs", r"messagelabs|delivery to the following recipients failed permanently"),
        ("mimecast", r"mimecast"),
        ("trendmicro", r"trend micro|interscan"),
        ("domino", r"was not delivered to:|domino directory|delivery failure report"),
        ("groupwise", r"undeliverable recipient|groupwise|transfer status"),
        (
            "generic",
            r"(could not|couldn't|cannot|can't|was not|wasn't|has not been) (be )?delivered|"
            r"delivery (to the following recipients? )?(has )?failed|undeliverable|permanent (fatal )?error|"
            r"не (может быть |было )?доставлено|недоставлен|配信(でき|に失敗)|届きませんでした|宛先不明|"
            r"user unknown|mailbox (unavailable|full)|no such user|recipient address rejected|"
            r"unable to deliver (the |your )?message|failed addresses follow|"
            r"had (permanent fatal |delivery )errors",
        ),
    )
)
# Where each system writes the failed recipient, most specific first; `a` is the address.
_RECIPIENT_LINES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    for pattern in (
        rf"^[ \t]*<(?P<a>{_ADDR})>[:.]?[ \t]",
        rf"^[ \t]*<(?P<a>{_ADDR})>:?[ \t]*$",
        rf"(?:message|e-?mail|mail|document) (?:to|for) <?(?P<a>{_ADDR})>? (?:couldn't|could not|can't|"
        rf"cannot|wasn't|was not|has not|hasn't|did not|didn't|failed|was rejected)",
        rf"(?:wasn't|was not|couldn't be|could not be|not|cannot be) delivered to:?\s*(?:the following "
        rf"recipients?(?:\(s\))?:?\s*)?[^\n<(@]{{0,60}}[<(]?(?P<a>{_ADDR})",
        rf"(?:failed|undeliverable) (?:to )?(?:these|the following) recipients?(?: or groups)?:?\s*"
        rf"(?:[^\n<(@]{{0,80}}[<(])?(?P<a>{_ADDR})",
        rf"following (?:address(?:\(es\)|es)?|recipients?)(?: failed| failed permanently)?:?\s*"
        rf"(?:[^\n<(@]{{0,80}}[<(])?(?P<a>{_ADDR})",
        rf"following (?:address(?:\(es\)|es)?|recipients?(?:\(s\))?)[^\n:]{{0,40}}:\s*<?(?P<a>{_ADDR})",
        rf"^[ \t]*(?:undeliverable|delayed|failed)(?: recipients?(?:\(s\))?)?:?\s*<?(?P<a>{_ADDR})",
        rf"RCPT TO:\s*<(?P<a>{_ADDR})>",
        rf"\brcpt=<?(?P<a>{_ADDR})",
        rf"\b(?:message|mail|server) for <?(?P<a>{_ADDR})",
        rf"^[ \t]*#?[45]\d\d[ -](?:[45]\.\d{{1,3}}\.\d{{1,3}} )?<(?P<a>{_ADDR})>",
        rf"(?:final|original)-recipient:\s*(?:rfc822;\s*)?<?(?P<a>{_ADDR})",
        rf"^[ \t]*(?P<a>{_ADDR}):?[ \t]+(?:\(|#?[45]\d\d|host|said|mailbox|user|unknown|delivery|smtp)",
        rf"^[ \t]*(?:recipient(?: address)?|failed recipient|адрес(?:ат)?|получатель|宛先)\s*[:：]\s*"
        rf"<?(?P<a>{_ADDR})",
    )
)
_INLINE_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
# A system's own sentence naming the original: "The Message-ID of the undelivered message was: <...>",
# "Message ID: <...>", "Message <...> received from ... was rejected".
_TEXT_MESSAGE_ID = re.compile(
    r"\bmessage[- ]?id\b[^<\n]{0,40}\n?[ \t]*(<[^<>\s@]+@[^<>\s]+>)|\bmessage (<[^<>\s@]+@[^<>\s]+>)",
    re.IGNORECASE,
)
_INLINE_TO = re.compile(rf"^[ \t>]*To:[ \t]*(?:[^\n<]*<)?({_ADDR})", re.IGNORECASE | re.MULTILINE)
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|fw|fwd|wg|tr)\s*:", re.IGNORECASE)
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")


def is_abuse_report(msg: ParsedMessage) -> bool:
    """An RFC 5965 feedback report (ARF): a complaint about mail, not a delivery failure."""
    return any(a.content_type == "message/feedback-report" for a in msg.attachments)


def parse_dsn(msg: ParsedMessage) -> DeliveryStatus | None:
    """The delivery status a bounce reports, or None if the message is not a delivery report."""
    if is_abuse_report(msg):
        return None
    report = next((a for a in msg.attachments if a.content_type.endswith("delivery-status")), None)
    if report is not None:
        status = _from_report(msg, report.text)
        if status is not None:
            return status
    notification = _from_ses_notification(msg)
    if notification is not None:
        return notification
    reader = _prose_reader(msg, has_report=report is not None)
    return _from_prose(msg, reader) if reader else None


# -- reader 1b: Amazon SES's JSON notification (mailed by SNS) ---------------------------------------------


def _from_ses_notification(msg: ParsedMessage) -> DeliveryStatus | None:
    """`{"notificationType": "Bounce", "bounce": {...}}`, bare or inside an SNS envelope's "Message"."""
    text = msg.text.lstrip()
    if not text.startswith("{") or "notificationType" not in text[:4000]:
        return None
    try:
        # strict=False: SNS folds long lines, so a string may hold a line break.
        decoder = json.JSONDecoder(strict=False)
        found, _ = decoder.raw_decode(text)
        if isinstance(found, dict) and isinstance(found.get("Message"), str):
            found, _ = decoder.raw_decode(found["Message"])  # the SNS envelope
    except ValueError:
        return None
    bounce = found.get("bounce") if isinstance(found, dict) else None
    if found.get("notificationType") != "Bounce" or not isinstance(bounce, dict):
        return None  # a Delivery is a receipt, a Complaint is an abuse report
    bounced = [r for r in bounce.get("bouncedRecipients", []) if isinstance(r, dict)]
    first = bounced[0] if bounced else {}
    headers = found.get("mail", {}).get("commonHeaders", {}) if isinstance(found.get("mail"), dict) else {}
    ids = find_message_ids(str(headers.get("messageId", ""))) if isinstance(headers, dict) else ()
    return DeliveryStatus(
        # SES sends one only when it gave up on the message, "Transient" bounces included.
        action="failed",
        status=_status(str(first.get("status", ""))),
        recipients=tuple(str(r["emailAddress"]).lower() for r in bounced if r.get("emailAddress")),
        original_message_id=ids[0] if ids else None,
        diagnostic=str(first.get("diagnosticCode", ""))[:300] or None,
        reader="ses",
    )


# -- reader 1: the RFC 3464 report -----------------------------------------------------------------------


def _from_report(msg: ParsedMessage, text: str) -> DeliveryStatus | None:
    blocks = [
        _fields(block) for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if block.strip()
    ]
    recipients = [
        (block, action)
        for block in blocks
        if (action := _action(block)) is not None
        and ("action" in block or "final-recipient" in block or "original-recipient" in block)
    ]
    if not recipients:
        return None
    action = min((action for _, action in recipients), key=_rank)
    chosen = [block for block, each in recipients if each == action]
    first = chosen[0]
    diagnostic = _typed_value(first.get("diagnostic-code", "")) or None
    found = [_recipient_of(block) for block in chosen]
    return DeliveryStatus(
        action=action,
        status=_specific(_status(first.get("status", "")), _status(diagnostic or ""))
        or _prose_status(msg, action),
        recipients=tuple(dict.fromkeys(a for a in found if a)) or _prose_recipients(msg),
        original_message_id=_original_message_id(msg),
        diagnostic=diagnostic or _smtp_reply(msg.text),
        reader="report",
    )


def _action(block: dict[str, str]) -> str | None:
    value = block.get("action", "").strip().lower()
    word = re.split(r"[\s(;,]", value, maxsplit=1)[0] if value else ""
    if word in _ACTION_WORDS:
        return _ACTION_WORDS[word]
    # No (or an unknown) Action: the status class says it (RFC 3463: 2 success, 4 persistent, 5 permanent).
    status = _status(block.get("status", "")) or _status(block.get("diagnostic-code", ""))
    if status is None:
        return None
    return {"2": "delivered", "4": "delayed", "5": "failed"}[status[0]]


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


def _recipient_of(block: dict[str, str]) -> str | None:
    for name in ("final-recipient", "original-recipient", "x-actual-recipient"):
        found = _ANY_ADDRESS.search(_typed_value(block.get(name, "")))
        if found:
            return found.group(0).lower()
    return None


def _specific(stated: str | None, diagnosed: str | None) -> str | None:
    """The Status field's code, unless it is only a class ("5.0.0") and the remote's reply says more."""
    if stated and diagnosed and stated[0] != "2" and stated.endswith(".0.0") and diagnosed[0] == stated[0]:
        return diagnosed
    return stated or diagnosed


def _status(value: str) -> str | None:
    match = _STATUS.search(value)
    return match.group(1) if match else None


# -- readers 2 and 3: a mail system's words ---------------------------------------------------------------


def _prose_reader(msg: ParsedMessage, *, has_report: bool) -> str | None:
    """Which reader recognises this as a bounce (a vendor's name, or "smtp-reply"), or None."""
    subject = msg.subject
    bounce_subject = bool(_BOUNCE_SUBJECT.match(subject))
    system = _from_mail_system(msg)
    if _REPLY_PREFIX.match(subject) and not system:
        return None  # a person's reply or forward about a bounce is a person's mail
    carries_original = any(a.content_type in _ORIGINAL_TYPES for a in msg.attachments)
    head = msg.new_text[:20_000] or msg.text[:20_000]
    vendor = next((name for name, shape in _VENDOR_SHAPES if shape.search(head)), None)
    # A vendor's own wording needs a bounce subject or a mail system behind it; generic words need the system.
    if vendor and (system or has_report or (bounce_subject and vendor != "generic")):
        return vendor
    # A null Return-Path (RFC 5321 §4.5.5: what every bounce carries) with a bounce subject or a returned
    # original, and a mail system's words: a bounce signed by a no-reply@ or sysadmin@ address.
    if vendor and _null_sender(msg) and (bounce_subject or carries_original):
        return vendor
    if bounce_subject and (system or carries_original or has_report or _SMTP_REPLY.search(head)):
        return "smtp-reply"
    if system and (carries_original or has_report) and _SMTP_REPLY.search(head):
        return "smtp-reply"
    # A message from a mailer's own address whose line starts with an SMTP reply ("550 Unknown user",
    # "Reason: 550 Rejected") is a bounce in any wording. Only the address or name counts here: a null
    # Return-Path with Auto-Submitted is also an auto-reply's, and "Room 401 Caxton House" is not a reply.
    if _named_mail_system(msg) and _SMTP_REPLY_LINE.search(head):
        return "smtp-reply"
    return None


def _named_mail_system(msg: ParsedMessage) -> bool:
    local = msg.sender.partition("@")[0]
    display = (msg.header("From") or "").partition("<")[0]
    return bool(_SYSTEM_LOCAL_PART.match(local) or _SYSTEM_NAME.search(display))


def _from_mail_system(msg: ParsedMessage) -> bool:
    # A null Return-Path alone is not enough: RFC 3834 auto-replies use it too.
    return _named_mail_system(msg) or (_null_sender(msg) and is_auto_submitted(msg) is not None)


def _null_sender(msg: ParsedMessage) -> bool:
    return_path = msg.header("Return-Path")
    return return_path is not None and return_path.strip() in ("<>", "", "<MAILER-DAEMON>")


def _from_prose(msg: ParsedMessage, reader: str) -> DeliveryStatus:
    """A bounce without a machine-readable report: the action, status and recipient from its words."""
    action = "delayed" if _is_delay(msg) else "failed"
    return DeliveryStatus(
        action=action,
        status=_prose_status(msg, action),
        recipients=_prose_recipients(msg),
        original_message_id=_original_message_id(msg),
        diagnostic=_smtp_reply(msg.new_text or msg.text),
        reader=reader,
    )


def _is_delay(msg: ParsedMessage) -> bool:
    if _DELAY_SUBJECT.match(msg.subject):
        return True
    text = msg.new_text or msg.text
    return bool(_DELAY_TEXT.search(text)) and not _GIVE_UP.search(f"{msg.subject}\n{text}")


def _prose_status(msg: ParsedMessage, action: str) -> str | None:
    """The RFC 3463 code of the failure, preferring one of the action's class (4 for a delay, 5 else)."""
    text = msg.new_text or msg.text
    # The remote's own reply ("550 5.7.1 ...") says more than a relay's summary ("#5.5.0") around it.
    replied = [m.group(2) for m in _SMTP_REPLY.finditer(text) if m.group(2)]
    codes = replied + [m.group(1) for m in _STATUS.finditer(text)]
    wanted = "4" if action == "delayed" else "5"
    return next((c for c in codes if c[0] == wanted), None) or next((c for c in codes if c[0] != "2"), None)


def _smtp_reply(text: str) -> str | None:
    match = _SMTP_REPLY.search(text)
    return " ".join(match.group(0).split())[:300] if match else None


def _prose_recipients(msg: ParsedMessage) -> tuple[str, ...]:
    """The failed recipient(s): X-Failed-Recipients, the system's own lines, else the original's To."""
    ours = {msg.sender, *(_addresses(msg.header("To") or "")), *(_addresses(msg.header("Cc") or ""))}
    failed = [a.lower() for header in msg.header_all("X-Failed-Recipients") for a in _addresses(header)]
    if failed:
        return tuple(dict.fromkeys(failed))
    text = msg.new_text or msg.text
    for pattern in _RECIPIENT_LINES:
        found = [m.group("a").lower() for m in pattern.finditer(text)]
        found = [a for a in found if a not in ours and not _SYSTEM_LOCAL_PART.match(a.partition("@")[0])]
        if found:
            return tuple(dict.fromkeys(found))
    return _original_recipients(msg, ours)


def _original_recipients(msg: ParsedMessage, ours: set[str]) -> tuple[str, ...]:
    texts = [a.text for a in msg.attachments if a.content_type in _ORIGINAL_TYPES] + [msg.text]
    for text in texts:
        found = [m.group(1).lower() for m in _INLINE_TO.finditer(text)]
        found = [a for a in found if a not in ours]
        if found:
            return tuple(dict.fromkeys(found))
    return ()


def _addresses(value: str) -> list[str]:
    return [m.group(0).lower() for m in _ANY_ADDRESS.finditer(value)]


def _original_message_id(msg: ParsedMessage) -> str | None:
    """The Message-ID of the bounced original, from an attached message or its headers, else the body."""
    for attachment in msg.attachments:
        if attachment.content_type in _ORIGINAL_TYPES:
            found = _attached_message_id(attachment)
            if found:
                return found
    own = msg.message_id
    for pattern in (_INLINE_MESSAGE_ID, _TEXT_MESSAGE_ID):
        for match in pattern.finditer(msg.text):
            ids = [i for i in find_message_ids(match.group(match.lastindex or 1)) if i != own]
            if ids:
                return ids[0]
    return None


def _attached_message_id(attachment: Attachment) -> str | None:
    headers: Message = Parser(policy=compat32).parsestr(attachment.text, headersonly=True)
    ids = find_message_ids(str(headers.get("Message-ID", "")))
    if ids:
        return ids[0]
    match = _INLINE_MESSAGE_ID.search(attachment.text)
    found = find_message_ids(match.group(1)) if match else ()
    return found[0] if found else None
