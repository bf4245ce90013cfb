"""Cases: add one or import many (the NI number kept only as a keyed hash, a re-referral refused), and the
case view that `case show` prints. A part of Mailroom, which supplies the settings, engine and clock.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailroom.core.config import Settings
from mailroom.core.errors import Conflict, InputError
from mailroom.core.identity import nino_hmac, normalise_case_ref
from mailroom.edges.configfile import read_secret
from mailroom.service.views import case_view
from mailroom.store import queries
from mailroom.store.engine import transaction
from mailroom.store.models import Case
from mailroom.store.readonly import ReadOnly
from parsers.errors import InvalidNino
from parsers.nino import normalise_nino


@dataclass(frozen=True)
class NewCase:
    case_ref: str
    atw_ref: str | None = None
    prap_id: str | None = None
    nino: str | None = None
    performance_manager: str | None = None
    restricted: bool = False
    font_exception: bool = False


class CaseDesk:
    settings: Settings
    engine: Engine
    now: Callable[[], datetime]
    _case_ref: re.Pattern[str]
    _hmac_key: bytes | None

    def add_case(self, new: NewCase, *, actor: str, force: bool = False) -> Case:
        with transaction(self.engine) as session:
            return self._add_case(session, new, actor=actor, force=force)

    def import_cases(
        self, path: Path, *, actor: str, force: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        """Add every case in a CSV file, or none: a bad row rolls the whole file back."""
        rows = list(_read_case_csv(path))
        with transaction(self.engine) as session:
            for line, new in rows:
                try:
                    self._add_case(session, new, actor=actor, force=force)
                except InputError as exc:
                    raise InputError(f"{path}:{line}: {exc}") from None
                if progress:
                    progress(1)
        return len(rows)

    def _add_case(self, session: Session, new: NewCase, *, actor: str, force: bool) -> Case:
        case_ref = normalise_case_ref(new.case_ref)
        if not self._case_ref.fullmatch(case_ref):
            raise InputError(
                f"case reference {case_ref!r} does not match [matching] case_ref_pattern "
                f"{self.settings.matching.case_ref_pattern!r}"
            )
        if queries.get_case(session, case_ref) is not None:
            raise Conflict(f"case {case_ref} exists already")
        queries.refuse_if_erased(session, case_ref)
        digest = self._nino_digest(new.nino) if new.nino else None
        if digest and queries.cases_by_nino_hmac(session, digest) and not force:
            # Memo 08 §4.62: a customer can be on the programme only once.
            raise Conflict(
                "a case for this NI number exists already (re-referral, guidance §4.62); use --force if "
                "this is a permitted re-referral"
            )
        manager = self._checked_manager(new.performance_manager)
        case = Case(
            case_ref=case_ref,
            atw_ref=_blank_to_none(new.atw_ref),
            prap_id=_blank_to_none(new.prap_id),
            nino_hmac=digest,
            performance_manager=manager,
            restricted=new.restricted,
            font_exception=new.font_exception,
            created_at=self.now(),
        )
        queries.add_audited(
            session,
            case,
            entity="case",
            action="case-added",
            now=self.now(),
            actor=actor,
            detail={"forced_rereferral": True} if digest and force else {},
        )
        return case

    def _nino_digest(self, nino: str) -> str:
        key = self._nino_digest_key()
        try:
            return nino_hmac(key, normalise_nino(nino))
        except InvalidNino as exc:
            raise InputError(str(exc)) from None

    def _nino_digest_key(self) -> bytes:
        if self._hmac_key is None:
            key = read_secret(
                self.settings.matching.nino_hmac_key_file,
                source=self.settings.source,
                key="[matching] nino_hmac_key_file",
            )
            self._hmac_key = key.encode("utf-8")
        return self._hmac_key

    def _checked_manager(self, address: str | None) -> str | None:
        if not address:
            return None
        if address.lower() not in self.settings.allowed_recipients():
            raise InputError(
                "the performance manager address is not on the outbound allow-list; add it to "
                "[outbox] extra_allowed_recipients first"
            )
        return address.lower()

    def case_view(self, case_ref: str) -> dict[str, Any]:
        """`case show REF --json` (design.md §8), plus each submission's timeline."""
        with ReadOnly.of_engine(self.engine) as reader:
            return case_view(reader, case_ref)


def _read_case_csv(path: Path) -> Iterator[tuple[int, NewCase]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as UTF-8 text: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    columns = set(reader.fieldnames or ())
    if "case_ref" not in columns:
        raise InputError(f"{path}:1: the header row must name a case_ref column")
    unknown = columns - {"case_ref", "atw_ref", "prap_id", "nino", "performance_manager", "restricted"}
    if unknown:
        raise InputError(f"{path}:1: unknown column(s): {', '.join(sorted(unknown))}")
    for row in reader:
        line = reader.line_num
        if None in row:
            raise InputError(f"{path}:{line}: more fields than the header has")
        yield (
            line,
            NewCase(
                case_ref=(row.get("case_ref") or "").strip(),
                atw_ref=row.get("atw_ref"),
                prap_id=row.get("prap_id"),
                nino=_blank_to_none(row.get("nino")),
                performance_manager=_blank_to_none(row.get("performance_manager")),
                restricted=(row.get("restricted") or "").strip().lower() in {"1", "true", "yes"},
            ),
        )


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None
