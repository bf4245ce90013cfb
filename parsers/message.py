"""Raw bytes of one inbound message → ParsedMessage, surviving the mail that real servers deliver.

The stdlib feed parser reads the structure with ``compat32``, which keeps headers as raw strings and never
interprets them behind our back. ``policy.default`` would build a structured header object on every access,
and those objects raise on some malformed values (a bare ``filename*``, for one) and cost about three
quarters of the parse time. So headers are decoded here: RFC 2047 words through ``email.header``, raw 8-bit
bytes as UTF-8 then cp1252; only From goes through the RFC 5322 address parser of ``policy.default``,
guarded, with a strict pattern as the fallback. Limits bound the work a hostile message can cause: total
size, header count and length, MIME depth, number of parts, and how many PDFs are read.

Only input that is not mail at all (empty, binary garbage, no header section) or over a hard limit (bytes,
lines, MIME delimiter lines) raises MalformedMessage; everything else yields a ParsedMessage whose
``defects`` say what was wrong.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.generator import BytesGenerator
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesParser, Parser
from email.utils import parsedate_to_datetime
from io import BytesIO

from parsers import docx
from parsers.charsets import clean, decode_bytes, decode_header_value, unsmuggle
from parsers.errors import MalformedMessage, PdfError
from parsers.html import html_to_text
from parsers.quoting import strip_quoted_history
from parsers.refs import find_message_ids
from parsers.types import Attachment, ParsedMessage

__all__ = [
    "DEFAULT_MAX_BYTES",
    "parse_message",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 25_000_000
MAX_HEADERS = 1_000
MAX_HEADER_CHARS = 16_000
MAX_FROM_CHARS = 1_000
MAX_DEPTH = 20
MAX_PARTS = 500
MAX_LINES = 1_000_000
MAX_DELIMITER_LINES = 10_000
MAX_PDFS = 5
MAX_WORD_DOCUMENTS = 5
MAX_HTML_CHARS = 500_000
# new_text is what the classifier reads; a notice is short, and hostile bodies must not cost seconds.
MAX_NEW_TEXT_CHARS = 200_000
PDF_MAX_PAGES = 50

# A field name is printable ASCII except ":" (RFC 5322 §2.2); an mbox "From " line may precede the headers.
_HEADER_LINE = re.compile(rb"^(?:From [^\r\n]*\r?\n)?[!-9;-~]{1,100}[ \t]*:")
_KNOWN_HEADERS = frozenset(
    {"from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references", "received"}
    | {"return-path", "mime-version", "content-type", "sender", "reply-to", "authentication-results"}
)
# One mailbox: an optional display name (quoted without escapes, or plain words without specials) and an
# angle address, or a bare address; ASCII atext local part and an ASCII host name. Anything else is parsed.
_ADDR_SPEC = r"[\w.!#$%&'*+/=?^`{|}~-]+@[A-Za-z0-9.-]+"
_SIMPLE_FROM = re.compile(
    # Written so that no two parts can match the same spaces: no backtracking blow-up on long values.
    rf"""^(?:[ \t]*"[^"\\\r\n]*"[ \t]*|[^"<>@,;:()\\\[\]\r\n]*)<({_ADDR_SPEC})>[ \t]*$"""
    rf"""|^[ \t]*({_ADDR_SPEC})[ \t]*$""",
    re.ASCII,
)
# The registry builds a new header class on every lookup; one class, built once, parses every From.
_FROM_HEADER = HeaderRegistry()["from"]
_PDF_NAME = re.compile(r"\.pdf\s*$", re.IGNORECASE)
_GUESS_BOUNDARY = re.compile(r"^--([ -~]{1,70}?)[ \t]*$", re.MULTILINE)


def parse_message(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, read_pdfs: bool = True) -> ParsedMessage:
    """Parse one message; MalformedMessage only when `raw` is not mail at all or is over `max_bytes`."""
    _check_looks_like_mail(raw, max_bytes)
    try:
        return _read(BytesParser(policy=email_policy.compat32).parsebytes(raw), raw, read_pdfs)
    except MalformedMessage:
        raise
    except Exception as exc:  # no input seen so far gets here (fuzzed); if one does, it is unreadable
        log.debug("message could not be read", exc_info=True)
        raise MalformedMessage(
            f"message of {len(raw)} bytes could not be parsed ({type(exc).__name__})"
        ) from exc


def _check_looks_like_mail(raw: bytes, max_bytes: int) -> None:
    if len(raw) > max_bytes:
        raise MalformedMessage(f"message is {len(raw)} bytes, over the limit of {max_bytes}")
    if not raw.strip():
        raise MalformedMessage("message is empty")
    # The stdlib feed parser works line by line (about a microsecond a line, and more per MIME part):
    # refuse shapes no real message has before they cost seconds. 25 MB of base64 is ~330,000 lines.
    lines = raw.count(b"\n")
    if lines > MAX_LINES:
        raise MalformedMessage(f"message has {lines} lines, over the limit of {MAX_LINES}")
    delimiters = raw.count(b"\n--")
    if delimiters > MAX_DELIMITER_LINES:
        raise MalformedMessage(
            f"message has {delimiters} MIME delimiter lines, over the limit of {MAX_DELIMITER_LINES}"
        )
    if not _HEADER_LINE.match(raw.lstrip(b"\r\n")):
        raise MalformedMessage("message does not start with a header field; not an e-mail message")


def _read(msg: Message, raw: bytes, read_pdfs: bool) -> ParsedMessage:
    notes = _Notes([], read_pdfs=read_pdfs)
    headers = _decode_headers(msg, notes)
    if not any(name.lower() in _KNOWN_HEADERS for name, _ in headers):
        raise MalformedMessage("message has none of the usual header fields; not an e-mail message")
    text = _visit(msg, 0, notes)
    subject = _first(headers, "subject") or ""
    from_addresses = _from_addresses(msg, notes)
    sender = from_addresses[0] if from_addresses else ""
    notes.defects.extend(type(defect).__name__ for defect in msg.defects)
    return ParsedMessage(
        message_id=_first_id(_first(headers, "message-id")),
        in_reply_to=_first_id(_first(headers, "in-reply-to")),
        references=find_message_ids(" ".join(v for k, v in headers if k.lower() == "references")),
        subject=subject,
        sender=sender,
        sender_domain=sender.rpartition("@")[2],
        date=_date(_first(headers, "date"), notes),
        headers=headers,
        text=text,
        new_text=strip_quoted_history(text[:MAX_NEW_TEXT_CHARS], subject),
        attachments=tuple(notes.attachments),
        defects=tuple(dict.fromkeys(notes.defects)),
        raw_size=len(raw),
        content_type=msg.get_content_type(),
        from_addresses=from_addresses,
    )


@dataclass
class _Notes:
    """What a walk over the MIME tree collects besides the body text."""

    defects: list[str]
    read_pdfs: bool
    attachments: list[Attachment] = field(default_factory=list)
    parts: int = 0
    documents_read: Counter[str] = field(default_factory=Counter)


# --- headers ---------------------------------------------------------------------------------------------


def _decode_headers(msg: Message, notes: _Notes) -> tuple[tuple[str, str], ...]:
    """Every header as (name, decoded value), top to bottom, with length and count limits applied."""
    decoded: list[tuple[str, str]] = []
    for index, (name, raw_value) in enumerate(msg.raw_items()):
        if index >= MAX_HEADERS:
            notes.defects.append("too-many-headers")
            break
        value = str(raw_value)
        if len(value) > MAX_HEADER_CHARS:
            notes.defects.append("header-too-long")
            value = value[:MAX_HEADER_CHARS]
        decoded.append((clean(str(name)), decode_header_value(value)))
    return tuple(decoded)


def _first(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _first_id(value: str | None) -> str | None:
    ids = find_message_ids(value or "")
    return ids[0] if ids else None


def _from_addresses(msg: Message, notes: _Notes) -> tuple[str, ...]:
    found: list[str] = []
    for name, value in msg.raw_items():
        if name.lower() == "from":
            found.extend(_addresses(unsmuggle(str(value)[:MAX_HEADER_CHARS]), notes))
    return tuple(dict.fromkeys(found))


def _addresses(value: str, notes: _Notes) -> list[str]:
    """Addr-specs from one From value, read by the RFC 5322 parser; if that raises, only unambiguous ones."""
    simple = _SIMPLE_FROM.match(value)
    if simple:
        # The common shapes ("Name" <a@b>, Name <a@b>, a@b) give the same answer as the full parser,
        # which costs about a millisecond per message.
        return [(simple.group(1) or simple.group(2)).lower()]
    if len(value) > MAX_FROM_CHARS:
        # The full parser is quadratic on some shapes (15,000 quote marks took 6.5 s).
        notes.defects.append("from-too-long")
        return _strict_addresses(clean(value))
    try:
        parsed = _FROM_HEADER("from", value)
    except Exception:  # the structured parser raises on some malformed values; see _strict_addresses
        notes.defects.append("from-unreadable")
        return _strict_addresses(clean(value))
    specs = [a.addr_spec.lower() for a in getattr(parsed, "addresses", ()) if a.username and a.domain]
    if not specs:
        notes.defects.append("from-unreadable")
    return [clean(spec) for spec in specs]


_ANGLE_ADDRESS = re.compile(r"<([^<>\s@\"]+@[^<>\s@\"]+)>")
_BARE_ADDRESS = re.compile(r"^[^\s<>@,;\"()]+@[^\s<>@,;\"()]+$")


def _strict_addresses(value: str) -> list[str]:
    # Deliberately narrower than email.utils.getaddresses, which misreads crafted values (CVE-2023-27043).
    angled = _ANGLE_ADDRESS.findall(value)
    if angled:
        return [spec.lower() for spec in angled]
    return [value.lower()] if _BARE_ADDRESS.match(value) else []


def _date(value: str | None, notes: _Notes) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        notes.defects.append("date-unreadable")
        return None
    if parsed.tzinfo is None:
        # "-0000" means "zone unknown" (RFC 5322 §3.3); UTC is the least surprising reading.
        notes.defects.append("date-without-zone")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# --- body and attachments --------------------------------------------------------------------------------


def _visit(part: Message, depth: int, notes: _Notes) -> str:
    """The body text this part contributes; attachments and reports are collected into `notes`."""
    notes.parts += 1
    if depth > MAX_DEPTH or notes.parts > MAX_PARTS:
        notes.defects.append("mime-too-deep-or-too-many-parts")
        return ""
    ctype = part.get_content_type()
    if ctype in ("message/rfc822", "message/global"):
        notes.attachments.append(_attached_message(part, depth, notes))
        return ""
    if ctype in ("message/delivery-status", "message/global-delivery-status", "message/feedback-report"):
        notes.attachments.append(_delivery_report(part, ctype))
        return ""
    if part.is_multipart():
        children = [child for child in part.get_payload() if isinstance(child, Message)]
        if ctype == "multipart/alternative":
            return _best_alternative(children, depth, notes)
        return _join(_visit(child, depth + 1, notes) for child in children)
    if ctype.startswith("multipart/"):
        return _recover_multipart(part, ctype, depth, notes)
    if _is_attachment(part, ctype):
        notes.attachments.append(_leaf_attachment(part, ctype, notes))
        return ""
    text = _decode_part_text(part, notes)
    return _html_text(text, notes) if ctype == "text/html" else text


def _join(texts: Iterable[str]) -> str:
    return "\n\n".join(text for text in texts if text.strip())


def _best_alternative(children: list[Message], depth: int, notes: _Notes) -> str:
    """Plain text when it says something, otherwise the last (richest) alternative that does."""
    rendered = [(child.get_content_type(), _visit(child, depth + 1, notes)) for child in children]
    for ctype, text in rendered:
        if ctype == "text/plain" and text.strip():
            return text
    return next((text for _, text in reversed(rendered) if text.strip()), "")


def _recover_multipart(part: Message, ctype: str, depth: int, notes: _Notes) -> str:
    """A multipart with no (or a wrong) boundary parameter: guess it from the first delimiter line."""
    payload = part.get_payload()
    body = payload if isinstance(payload, str) else ""
    guess = _GUESS_BOUNDARY.search(body)
    if guess is None or depth >= MAX_DEPTH:
        notes.defects.append("multipart-unreadable")
        return body
    notes.defects.append("boundary-guessed")
    boundary = guess.group(1).replace('"', "")
    rebuilt = Parser(policy=email_policy.compat32).parsestr(
        f'Content-Type: {ctype}; boundary="{boundary}"\n\n{body}'
    )
    if not rebuilt.is_multipart():
        return body
    return _visit(rebuilt, depth + 1, notes)


def _is_attachment(part: Message, ctype: str) -> bool:
    if ctype not in ("text/plain", "text/html"):
        return True
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    return disposition == "attachment"


def _html_text(html: str, notes: _Notes) -> str:
    if len(html) > MAX_HTML_CHARS:
        # html.parser costs several microseconds a tag; the words that matter are at the top.
        notes.defects.append("html-truncated")
        html = html[:MAX_HTML_CHARS]
    try:
        return html_to_text(html)
    except Exception:  # html.parser can assert on pathological markup; strip tags instead
        notes.defects.append("html-unreadable")
        return re.sub(r"<[^>]*>", " ", html)


def _decode_part_text(part: Message, notes: _Notes) -> str:
    """A leaf part's text, decoded from its transfer encoding and charset."""
    payload = part.get_payload(decode=True)
    data = (
        payload if isinstance(payload, bytes) else str(part.get_payload()).encode("utf-8", "surrogateescape")
    )
    text, problem = decode_bytes(data, part.get_content_charset())
    if problem:
        notes.defects.append(problem)
    return text


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # a malformed RFC 2231 parameter; the file is still worth keeping
        return None
    # Outlook writes RFC 2047 words into filename parameters, which RFC 2231 readers leave alone.
    return decode_header_value(str(name)) if name else None


def _leaf_attachment(part: Message, ctype: str, notes: _Notes) -> Attachment:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    filename = _filename(part)
    if _is_pdf(ctype, filename, data):
        text = _pdf_text(data, notes)
    elif docx.is_docx(ctype, filename):
        text = _docx_text(data, notes)
    elif ctype.startswith("text/"):
        text = _decode_part_text(part, notes)
        text = _html_text(text, notes) if ctype == "text/html" else text
    else:
        text = ""
    return Attachment(filename=filename, content_type=ctype, data=data, text=text)


def _is_pdf(ctype: str, filename: str | None, data: bytes) -> bool:
    return ctype == "application/pdf" or bool(filename and _PDF_NAME.search(filename)) or data[:5] == b"%PDF-"


def _pdf_text(data: bytes, notes: _Notes) -> str:
    if not _may_read(notes, "pdf"):
        return ""
    try:
        # Imported here so the MIME parser works (and imports fast) without pdfplumber's import cost.
        from parsers.pdf import extract_text
    except ImportError:
        notes.defects.append("pdf-reader-unavailable")
        return ""
    try:
        return extract_text(data, max_pages=PDF_MAX_PAGES)
    except PdfError as exc:
        notes.defects.append(f"pdf-unreadable: {exc}")
        return ""


def _docx_text(data: bytes, notes: _Notes) -> str:
    if not _may_read(notes, "docx"):
        return ""
    try:
        return docx.extract_text(data)
    except docx.DocxError as exc:
        notes.defects.append(f"docx-unreadable: {exc}")
        return ""


_DOCUMENTS_READ_AT_MOST = {"pdf": MAX_PDFS, "docx": MAX_WORD_DOCUMENTS}


def _may_read(notes: _Notes, kind: str) -> bool:
    """Whether one more attached document of this kind is read: a hostile message can attach hundreds."""
    if not notes.read_pdfs:
        return False
    notes.documents_read[kind] += 1
    if notes.documents_read[kind] > _DOCUMENTS_READ_AT_MOST[kind]:
        notes.defects.append(f"{kind}-not-read-over-limit")
        return False
    return True


def _attached_message(part: Message, depth: int, notes: _Notes) -> Attachment:
    """An attached message (a bounce's original, a forward-as-attachment): its main headers and body text."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload and isinstance(payload[0], Message) else None
    if inner is None:
        text = str(payload) if isinstance(payload, str) else ""
        return Attachment(None, "message/rfc822", text.encode("utf-8", "surrogateescape"), _clean_lines(text))
    inner_notes = _Notes(notes.defects, read_pdfs=False, parts=notes.parts)
    heads = _decode_headers(inner, inner_notes)
    shown = [f"{name}: {value}" for name, value in heads if name.lower() in _ATTACHED_HEADERS]
    body = _visit(inner, depth + 1, inner_notes)
    notes.parts = inner_notes.parts
    return Attachment(_filename(part), "message/rfc822", _as_bytes(inner), "\n".join(shown) + "\n\n" + body)


_ATTACHED_HEADERS = frozenset({"from", "to", "subject", "date", "message-id", "in-reply-to", "references"})


def _as_bytes(msg: Message) -> bytes:
    out = BytesIO()
    try:
        BytesGenerator(out, mangle_from_=False, policy=email_policy.compat32).flatten(msg)
    except Exception:  # keep the attachment's text even if it cannot be re-serialised
        return b""
    return out.getvalue()


def _delivery_report(part: Message, ctype: str) -> Attachment:
    """A report part (delivery-status, global or feedback) as text: one block of "Field: value" lines each."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if not isinstance(block, Message):
                continue
            blocks.append("\n".join(f"{name}: {clean(str(value))}" for name, value in block.raw_items()))
            # message/global-delivery-status is parsed as one message: its later blocks are the "body".
            rest = block.get_payload()
            if isinstance(rest, str) and rest.strip():
                blocks.append(rest.strip())
        text = "\n\n".join(blocks)
    else:
        text = str(payload)
    return Attachment(None, ctype, text.encode("utf-8", "surrogateescape"), text)


def _clean_lines(text: str) -> str:
    return "\n".join(clean(line) if line.strip() else "" for line in text.splitlines())
