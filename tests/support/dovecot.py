"""Throwaway Dovecot, moved to mailroom.harness.dovecot (the harness ships it); tests import it from here."""

from mailroom.harness.dovecot import (
    ALICE,
    BOB,
    DEFAULT_USERS,
    DOMAIN,
    HOST,
    INSTALL_HINT,
    Dovecot,
    ServerUnavailable,
    check_installed,
    free_ports,
    port_open,
    short_temp_dir,
    wait_for_ports,
)

__all__ = [
    "ALICE",
    "BOB",
    "DEFAULT_USERS",
    "DOMAIN",
    "HOST",
    "INSTALL_HINT",
    "Dovecot",
    "ServerUnavailable",
    "check_installed",
    "free_ports",
    "port_open",
    "short_temp_dir",
    "wait_for_ports",
]
