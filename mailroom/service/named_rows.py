"""The submissions and cases a fetched group's messages name, read with two queries a group.

A catch-up applies a group of messages in one transaction. Looking up each message's threads
(In-Reply-To, References, a bounce's original Message-ID) and case references one at a time cost two or
three queries a message. Ingest never creates a case or a submission, nor changes the Message-ID or the
reference either is found by, so what `NamedRows.load` reads at the start of a group answers for all of
it; the rows are the session's own, so a state an earlier message of the group changed is seen. A value
not read ahead (and everything, for `NamedRows()`: a single message) is queried as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlmodel import Session, col, select

from mailroom.core.identity import normalise_case_ref
from mailroom.service.reading import Reading
from mailroom.store import queries
from mailroom.store.models import Case, Submission
from parsers.types import Classification, ParsedMessage

_CHUNK = 500  # values a query's IN list
_M = TypeVar("_M", Submission, Case)


@dataclass
class NamedRows:
    submissions: dict[str, Submission | None] = field(default_factory=dict)  # by Message-ID
    cases: dict[str, Case | None] = field(default_factory=dict)  # by normalised case reference

    @classmethod
    def load(cls, session: Session, message_ids: Iterable[str], case_refs: Iterable[str]) -> NamedRows:
        ids = sorted(set(message_ids))
        refs = sorted({normalise_case_ref(ref) for ref in case_refs})
        submissions: dict[str, Submission | None] = dict.fromkeys(ids)
        for sub in _rows_where_in(session, Submission, "message_id", ids):
            assert sub.message_id is not None  # unique, as is a case's reference
            submissions[sub.message_id] = sub
        cases: dict[str, Case | None] = dict.fromkeys(refs)
        for case in _rows_where_in(session, Case, "case_ref", refs):
            cases[case.case_ref] = case
        return cls(submissions, cases)

    @classmethod
    def for_readings(
        cls,
        session: Session,
        readings: Sequence[Reading | None],
        names: Callable[[ParsedMessage, Classification], tuple[Sequence[str], Sequence[str]]],
    ) -> NamedRows:
        """What a group's messages name (`names`: `Evidence.names`), two queries for all of them."""
        message_ids: list[str] = []
        case_refs: list[str] = []
        for reading in readings:
            if reading is not None and reading.parsed is not None:
                ids, refs = names(reading.parsed, reading.classification)
                message_ids += ids
                case_refs += refs
        return cls.load(session, message_ids, case_refs)

    def submission_ids(self) -> list[int]:
        """The ids of the submissions found."""
        return [sub.id for sub in self.submissions.values() if sub is not None and sub.id is not None]

    def submission_by_message_id(self, session: Session, message_id: str) -> Submission | None:
        if message_id in self.submissions:
            return self.submissions[message_id]
        return queries.submission_by_message_id(session, message_id)

    def cases_by_refs(self, session: Session, case_refs: Sequence[str]) -> list[Case]:
        """The cases with these references, by id (as `queries.cases_by_refs` gives them)."""
        refs = [normalise_case_ref(ref) for ref in case_refs]
        found = {case.id: case for ref in refs if (case := self.cases.get(ref)) is not None}
        missing = [ref for ref in refs if ref not in self.cases]
        found.update({case.id: case for case in queries.cases_by_refs(session, missing)})
        return [found[key] for key in sorted(key for key in found if key is not None)]


def _rows_where_in(session: Session, model: type[_M], column: str, values: list[str]) -> Iterator[_M]:
    """The rows of `model` whose `column` is one of `values`, _CHUNK values a query."""
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        yield from session.exec(select(model).where(col(getattr(model, column)).in_(chunk))).all()
