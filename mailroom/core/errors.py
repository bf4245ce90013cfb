"""Errors of the mailroom application.

    MailroomError(Exception)                  exit code 1 unless said otherwise
    ├── ConfigError                           the configuration is wrong: exit 78 (EX_CONFIG)
    ├── InputError(MailroomError, ValueError) a user's input is wrong (file, case ref, report type, NI number)
    │   ├── NotFound(InputError, LookupError) the case / submission / message named does not exist
    │   └── Conflict(InputError)              it exists already, or the state does not allow it
    ├── StoreError                            the database is unreachable or not at the expected schema
    │   └── DatabaseUnavailable               it cannot be opened or written now (read-only, gone): may pass
    ├── DocumentUnwritable                    the documents folder refused a write (full, read-only)
    └── InvalidTransition                     a state change the state machine does not allow

Every message is one line that says what and where, and never holds personal data or secrets.
"""

from __future__ import annotations

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_CONFIG = 78


class MailroomError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = EX_FAILURE


class ConfigError(MailroomError):
    """The configuration file or a file it names is wrong."""

    exit_code = EX_CONFIG

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


class InputError(MailroomError, ValueError):
    """Something the user gave us is wrong; nothing was changed."""


class NotFound(InputError, LookupError):
    """The thing named does not exist."""


class Conflict(InputError):
    """It exists already, or its state does not allow this."""


class DocumentUnreadable(MailroomError):
    """A stored document cannot be read back: gone from disk, purged, damaged, or not decryptable."""


class DocumentUnwritable(MailroomError):
    """A document cannot be written to the documents folder (full, read-only): nothing was stored."""


class StoreError(MailroomError):
    """The database cannot be used: unreachable, or not at the expected schema revision."""


class DatabaseUnavailable(StoreError):
    """The database cannot be opened or written right now (a read-only file system, a server away): a
    fault of the machine, not of the schema, so the daemon waits for it to pass."""


class InvalidTransition(MailroomError):
    """The state machine does not allow this change."""

    def __init__(self, entity: str, entity_id: int, current: str, target: str) -> None:
        super().__init__(f"{entity} {entity_id} is {current}; it cannot become {target}")
        self.entity = entity
        self.entity_id = entity_id
        self.current = current
        self.target = target
