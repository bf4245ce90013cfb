"""Throwaway GnuPG homes, moved to mailroom.harness.gpg (the harness ships them); tests import from here."""

from mailroom.harness.gpg import GpgHome, GpgKey, kill_agent

__all__ = ["GpgHome", "GpgKey", "kill_agent"]
