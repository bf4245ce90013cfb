"""Cover-text and notice templates: `string.Template` files, overridable one by one from a folder.

A template is `<name>.txt`, looked up first in the configured folder, then in the package defaults
(outbox/templates/). Placeholders are `$name` or `${name}`; `$$` is a literal dollar. A notice template
starts with a `Subject:` line and a blank line, then the body. Every placeholder must be given a value:
a missing one is an error that names it, never a silent blank in a message to DWP.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_SUBJECT_PREFIX = "Subject:"


class TemplateError(ValueError):
    """A template is missing or malformed, or a value it needs was not given."""


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    body: str


@dataclass(frozen=True)
class _Loaded:
    name: str
    origin: str
    subject: string.Template | None
    body: string.Template

    def placeholders(self) -> set[str]:
        names = set(self.body.get_identifiers())
        if self.subject is not None:
            names.update(self.subject.get_identifiers())
        return names


class Templates:
    """Loads and renders templates; each file is read once and cached."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._cache: dict[str, _Loaded] = {}

    def render_cover(self, name: str, values: Mapping[str, str]) -> str:
        """The cover text of a report e-mail."""
        loaded = self._load(name)
        if loaded.subject is not None:
            raise TemplateError(
                f"template {name} ({loaded.origin}) has a Subject line; a cover text has none"
            )
        return _substitute(loaded, loaded.body, values)

    def render_notice(self, name: str, values: Mapping[str, str]) -> RenderedNotice:
        """Subject and body of a reminder, escalation or alert."""
        loaded = self._load(name)
        if loaded.subject is None:
            raise TemplateError(f"template {name} ({loaded.origin}) must start with a 'Subject:' line")
        subject = _substitute(loaded, loaded.subject, values).strip()
        return RenderedNotice(subject=subject, body=_substitute(loaded, loaded.body, values))

    def check(self, name: str, available: Iterable[str], *, notice: bool | None = None) -> None:
        """At startup: fail now if the template needs a value the caller will never supply, or (with
        `notice`) lacks the Subject line a notice needs or has one a cover text must not."""
        loaded = self._load(name)
        if notice is True and loaded.subject is None:
            raise TemplateError(f"template {name} ({loaded.origin}) must start with a 'Subject:' line")
        if notice is False and loaded.subject is not None:
            raise TemplateError(
                f"template {name} ({loaded.origin}) has a Subject line; a cover text has none"
            )
        unknown = loaded.placeholders() - set(available)
        if unknown:
            raise TemplateError(
                f"template {name} ({loaded.origin}) uses unknown placeholders: {', '.join(sorted(unknown))}"
            )

    def _load(self, name: str) -> _Loaded:
        if name not in self._cache:
            if not _NAME.fullmatch(name):
                raise TemplateError(f"template name {name!r} must be lower-case letters, digits or hyphens")
            origin, text = self._read(name)
            self._cache[name] = _parse(name, origin, text)
        return self._cache[name]

    def _read(self, name: str) -> tuple[str, str]:
        filename = f"{name}.txt"
        if self.folder is not None:
            path = self.folder / filename
            if path.is_file():
                return str(path), path.read_text(encoding="utf-8")
        default = resources.files("outbox").joinpath("templates", filename)
        if default.is_file():
            return "package default", default.read_text(encoding="utf-8")
        where = f"{self.folder} or the package defaults" if self.folder else "the package defaults"
        raise TemplateError(f"no template named {name} in {where}")


def _parse(name: str, origin: str, text: str) -> _Loaded:
    text = text.replace("\r\n", "\n")
    subject: string.Template | None = None
    if text.startswith(_SUBJECT_PREFIX):
        first, _, rest = text.partition("\n")
        if rest and not rest.startswith("\n"):
            raise TemplateError(f"template {name} ({origin}): a blank line must follow the Subject line")
        subject = string.Template(first.removeprefix(_SUBJECT_PREFIX).strip())
        text = rest.removeprefix("\n")
    body = string.Template(text)
    for part in (subject, body):
        if part is not None and not part.is_valid():
            raise TemplateError(
                f"template {name} ({origin}) has a malformed placeholder ($ not followed by a name)"
            )
    return _Loaded(name=name, origin=origin, subject=subject, body=body)


def _substitute(loaded: _Loaded, template: string.Template, values: Mapping[str, str]) -> str:
    # Check the whole template (subject and body) so one error lists every missing value.
    missing = sorted(loaded.placeholders() - set(values))
    if missing:
        raise TemplateError(
            f"template {loaded.name} ({loaded.origin}) needs values for: {', '.join(missing)}"
        )
    return template.substitute(values)
