"""The config and secret files on disk: read, checked, turned into settings by mailroom.core.config.

Errors name the file and the key, never a secret's content; the CLI exits 78 with that one line.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from mailroom.core.config import Settings
from mailroom.core.config_parse import settings_from_mapping
from mailroom.core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/mailroom/mailroom.toml")
CONFIG_ENV = "MAILROOM_CONFIG"


def config_path(cli_value: str | None) -> Path:
    """Where the config comes from: --config, then $MAILROOM_CONFIG, then /etc/mailroom/mailroom.toml."""
    return Path(cli_value or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(path: Path) -> Settings:
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, None, "file not found (use --config PATH or MAILROOM_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read the file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"not valid TOML: {exc}") from None
    return settings_from_mapping(data, source=source, base_dir=path.parent)


def read_secret(path: Path | None, *, source: str, key: str) -> str:
    """Read a secret from its file. Errors name the key and the file, never the content."""
    if path is None:
        raise ConfigError(source, key, "is required for this command")
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(source, key, f"file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, key, f"{path} is not UTF-8 text") from None
    if mode & 0o077:
        raise ConfigError(source, key, f"{path} is readable by group or others; chmod 600 it")
    if not value:
        raise ConfigError(source, key, f"{path} is empty")
    return value
