"""Inbound side: bytes in, typed values out. No database, no network, nothing from `mailroom` or `outbox`."""
