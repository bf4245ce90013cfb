"""The spool folder: drop a report PDF in `[intake] spool_dir` and the daemon submits it.

A file is claimed by an atomic rename into `.claimed/`, so two scans (or two daemons) never take the same
file. Its case and report type come from a sidecar `NAME.json` ({"case": "MH-100001", "type":
"support-plan", "supersedes": 12}), else from the file name (`MH-100001_support-plan.pdf`), else from the
PDF's own text. The submission records the file's name and sha256 (`intake_ref`), so after a crash
between the database commit and the clean-up, the next scan finds the submission instead of making a
second one. A file that cannot be taken goes to `failed/` with a `.error.txt` that says why. The plain PDF
is deleted once it is stored encrypted: it is health data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from mailroom.core.config import Settings
from mailroom.core.errors import DocumentUnwritable, InputError, MailroomError, StoreError
from mailroom.service.mailroom import Mailroom
from mailroom.store.documents import ensure_private_dir, write_private
from parsers.errors import PdfError
from parsers.refs import find_case_refs

log = logging.getLogger(__name__)
ACTOR = "daemon:intake"
CLAIMED = ".claimed"
FAILED = "failed"


@dataclass(frozen=True)
class Routing:
    case_ref: str
    report_type: str
    supersedes: int | None = None


class Intake:
    def __init__(self, settings: Settings, mailroom: Mailroom) -> None:
        self.settings = settings
        self.mailroom = mailroom
        self.spool = settings.intake.spool_dir

    def scan(self) -> int:
        """Submit every file waiting in the spool (and any claimed file left by a crash); returns how many."""
        if self.spool is None:
            return 0
        ensure_private_dir(self.spool / CLAIMED)
        ensure_private_dir(self.spool / FAILED)
        leftovers = sorted((self.spool / CLAIMED).glob("*.pdf"))
        for pdf in sorted(self.spool.glob("*.pdf")):
            claimed = self._claim(pdf)
            if claimed:
                leftovers.append(claimed)
        return sum(1 for claimed in leftovers if self._take(claimed))

    @property
    def _spool(self) -> Path:
        assert self.spool is not None
        return self.spool

    def _claim(self, pdf: Path) -> Path | None:
        target = self._spool / CLAIMED / pdf.name
        sidecar = pdf.with_suffix(".json")
        try:
            pdf.rename(target)  # atomic on one file system: whoever renames first owns the file
        except FileNotFoundError:
            return None  # another scan took it
        if sidecar.exists():
            sidecar.replace(target.with_suffix(".json"))
        return target

    def _take(self, claimed: Path) -> bool:
        try:
            data = claimed.read_bytes()
            intake_ref = f"{claimed.name[:60]}:{hashlib.sha256(data).hexdigest()}"
            routing = self._routing(claimed, data)
            submission = self.mailroom.submit_bytes(
                data,
                case_ref=routing.case_ref,
                report_type=routing.report_type,
                actor=ACTOR,
                supersedes=routing.supersedes,
                intake_ref=intake_ref,
            )
        except (DocumentUnwritable, StoreError):
            # A full documents folder or a database that cannot be written is the machine's fault, not the
            # file's: it stays claimed and the next scan takes it again (the runner logs the outage once),
            # instead of going to failed/ where only a person would send it on.
            raise
        except (MailroomError, OSError) as exc:
            self._fail(claimed, str(exc))
            return False
        claimed.unlink(missing_ok=True)
        claimed.with_suffix(".json").unlink(missing_ok=True)
        log.info("spool file taken as submission %s (%s)", submission.id, submission.state)
        return True

    def _routing(self, claimed: Path, data: bytes) -> Routing:
        sidecar = claimed.with_suffix(".json")
        if sidecar.exists():
            return _from_sidecar(sidecar)
        types = [t.code for t in self.settings.report_types]
        pattern = self.settings.matching.case_ref_pattern
        refs = find_case_refs(claimed.stem, pattern)
        found_type = next(
            (t for t in sorted(types, key=len, reverse=True) if t in claimed.stem.lower()), None
        )
        if not refs or found_type is None:
            text = _pdf_text(data)
            refs = refs or find_case_refs(text, pattern)
            found_type = found_type or self._type_in_text(text)
        if len(refs) != 1:
            raise InputError(f"cannot tell the case: {len(refs)} case references in the file name and text")
        if found_type is None:
            raise InputError(
                "cannot tell the report type from the file name or text; add a NAME.json sidecar"
            )
        return Routing(refs[0], found_type)

    def _type_in_text(self, text: str) -> str | None:
        folded = text.lower()
        hits = [t.code for t in self.settings.report_types if t.code != "other" and t.label.lower() in folded]
        return hits[0] if len(hits) == 1 else None

    def _fail(self, claimed: Path, reason: str) -> None:
        failed = self._spool / FAILED / claimed.name
        claimed.replace(failed)
        sidecar = claimed.with_suffix(".json")
        if sidecar.exists():
            sidecar.replace(failed.with_suffix(".json"))
        error_file = failed.with_name(failed.name + ".error.txt")
        error_file.unlink(missing_ok=True)
        write_private(error_file, (reason + "\n").encode("utf-8"))
        log.warning("spool file %s refused: %s", claimed.name, reason)


def _from_sidecar(sidecar: Path) -> Routing:
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        supersedes = data.get("supersedes")
        return Routing(
            str(data["case"]), str(data["type"]), int(supersedes) if supersedes is not None else None
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{sidecar.name}: not a valid sidecar ({{'case': ..., 'type': ...}}): {exc}"
        ) from None


def _pdf_text(data: bytes) -> str:
    from parsers.pdf import extract_text  # pdfplumber is heavy: only when a file needs reading

    try:
        return extract_text(data, max_pages=5)
    except PdfError as exc:
        raise InputError(f"cannot read the PDF: {exc}") from None
