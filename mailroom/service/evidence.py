"""What an inbound message says about our cases and submissions: the evidence, looked up in the store.

`core.matching.decide` weighs it; this module only finds it. For DWP's mail: threading, the submission token
in the subject, case references and NI numbers. A delivery report (bounce) carries our own message rather
than answering it, so it is searched further, in this order: the returned original's Message-ID, any of
our Message-IDs or submission tokens anywhere in its text or attachments, and, when it names none, the DWP
inbox as the failed recipient with the one report sent to it shortly before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlmodel import Session

from mailroom.core.config import Settings
from mailroom.core.identity import nino_hmac
from mailroom.core.matching import Candidate, Match, Method, OpenSubmission, decide, needs_open_submissions
from mailroom.service.named_rows import NamedRows
from mailroom.store import queries
from mailroom.store.models import Submission
from parsers.nino import find_ninos
from parsers.refs import find_case_refs, find_message_ids, find_submission_tokens, searchable_text
from parsers.types import Classification, Kind, ParsedMessage

# How far back a bounce that names nothing but the DWP inbox may point: remote queues give up after
# about five days, and a report sent earlier than that has long been answered or escalated.
BOUNCE_LOOKBACK = timedelta(days=5)


class Evidence:
    def __init__(self, settings: Settings, nino_key: Callable[[], bytes | None]) -> None:
        self.settings = settings
        self._nino_key = nino_key
        self._report_type_words = {
            t.code: re.compile(re.escape(t.label), re.IGNORECASE)
            for t in settings.report_types
            if t.code != "other"
        }

    def match(
        self,
        session: Session,
        msg: ParsedMessage,
        classification: Classification,
        *,
        received: datetime,
        named: NamedRows | None = None,
    ) -> tuple[Match, dict[int, Submission]]:
        """The match, and the submissions loaded on the way by id (the matched one among them, so the
        caller need not load it again: the session keeps no strong reference to an unchanged row).
        `named`: what a group's messages name, read ahead (`names`); else each is queried."""
        named = named or NamedRows()
        loaded: dict[int, Submission] = {}
        candidates = self._threads(session, msg, classification, loaded, named)
        if classification.kind == Kind.BOUNCE and not candidates:
            candidates += self._returned(session, msg, loaded, named)
        for token in find_submission_tokens(msg.subject):
            sub = _by_token(session, token)
            if sub is not None and sub.id is not None:
                loaded[sub.id] = sub
                candidates.append(Candidate(Method.SUBJECT_TOKEN, sub.case_id, sub.id))
        text = searchable_text(msg)
        for case in named.cases_by_refs(session, self._case_refs(text)):
            assert case.id is not None
            candidates.append(Candidate(Method.CASE_REF, case.id))
        candidates += self._nino_candidates(session, text)
        if not candidates and self.for_dwp_inbox(classification):
            candidates += self._sent_before(session, msg.date or received, loaded)
        open_subs: list[OpenSubmission] = []
        if needs_open_submissions(candidates):
            open_subs = self._open_submissions(session, candidates[0].case_id)
        types = [code for code, word in self._report_type_words.items() if word.search(text)]
        return decide(candidates, open_subs, report_types_named=types), loaded

    def names(self, msg: ParsedMessage, classification: Classification) -> tuple[list[str], tuple[str, ...]]:
        """The Message-IDs its threads name and the case references in its text: what `match` looks up
        first for every message (`NamedRows.load` reads a group's at once)."""
        return [message_id for _, message_id in _thread_ids(msg, classification)], self._case_refs(
            searchable_text(msg)
        )

    def _case_refs(self, text: str) -> tuple[str, ...]:
        return find_case_refs(text, self.settings.matching.case_ref_pattern)

    def for_dwp_inbox(self, classification: Classification) -> bool:
        """A bounce whose failed recipient is DWP's inbox: one of our reports did not arrive."""
        dsn = classification.dsn
        inbox = self.settings.dwp.inbox.lower()
        return classification.kind == Kind.BOUNCE and dsn is not None and inbox in dsn.recipients

    def _threads(
        self,
        session: Session,
        msg: ParsedMessage,
        c: Classification,
        loaded: dict[int, Submission],
        named: NamedRows,
    ) -> list[Candidate]:
        candidates = []
        found: dict[str, Submission | None] = {}  # In-Reply-To and References usually name the same one
        for method, message_id in _thread_ids(msg, c):
            if message_id not in found:
                found[message_id] = named.submission_by_message_id(session, message_id)
            sub = found[message_id]
            if sub is not None and sub.id is not None:
                loaded[sub.id] = sub
                candidates.append(Candidate(method, sub.case_id, sub.id))
        return candidates

    def _returned(
        self, session: Session, msg: ParsedMessage, loaded: dict[int, Submission], named: NamedRows
    ) -> list[Candidate]:
        """Our Message-IDs and submission tokens anywhere in a bounce: its text, the returned copy."""
        text = "\n".join((msg.text, *(a.text for a in msg.attachments)))
        candidates: list[Candidate] = []
        seen: set[int] = set()
        for message_id in find_message_ids(text):
            sub = named.submission_by_message_id(session, message_id)
            if sub is not None and sub.id is not None and sub.id not in seen:
                loaded[sub.id] = sub
                candidates.append(Candidate(Method.MESSAGE_ID_IN_TEXT, sub.case_id, sub.id))
                seen.add(sub.id)
        for token in find_submission_tokens(text):
            sub = _by_token(session, token)
            if sub is not None and sub.id is not None and sub.id not in seen:
                loaded[sub.id] = sub
                candidates.append(Candidate(Method.TOKEN_IN_TEXT, sub.case_id, sub.id))
                seen.add(sub.id)
        return candidates

    def _sent_before(
        self, session: Session, when: datetime, loaded: dict[int, Submission]
    ) -> list[Candidate]:
        """The one report sent to the DWP inbox in the lookback before the bounce, if there is exactly one."""
        sent = queries.submissions_sent_between(session, when - BOUNCE_LOOKBACK, when)
        if len(sent) != 1 or sent[0].id is None:
            return []
        loaded[sent[0].id] = sent[0]
        return [Candidate(Method.RECIPIENT_AND_TIME, sent[0].case_id, sent[0].id)]

    def _nino_candidates(self, session: Session, text: str) -> list[Candidate]:
        ninos = find_ninos(text)
        key = self._nino_key() if ninos else None
        if not key:
            return []
        result = []
        for nino in ninos:
            for case in queries.cases_by_nino_hmac(session, nino_hmac(key, nino)):
                assert case.id is not None
                result.append(Candidate(Method.NINO, case.id))
        return result

    def _open_submissions(self, session: Session, case_id: int) -> list[OpenSubmission]:
        return [
            OpenSubmission(s.id, s.report_type, int(s.sent_at.timestamp()) if s.sent_at else 0)
            for s in queries.open_submissions(session, case_id)
            if s.id is not None
        ]


def _thread_ids(msg: ParsedMessage, c: Classification) -> Iterator[tuple[Method, str]]:
    """The Message-IDs the message's threads name, each with the header it came from, in order."""
    threads = [(Method.IN_REPLY_TO, msg.in_reply_to)] if msg.in_reply_to else []
    threads += [(Method.REFERENCES, ref) for ref in msg.references]
    if c.dsn and c.dsn.original_message_id:
        threads.append((Method.DSN_ORIGINAL, c.dsn.original_message_id))
    for method, value in threads:
        for message_id in find_message_ids(value) or (value,):
            yield method, message_id


def _by_token(session: Session, token: str) -> Submission | None:
    """The submission a token such as S-000123 names (its id), if there is one."""
    return session.get(Submission, int(token.split("-")[1]))
