"""Outbound side: compose, encrypt, send. Nothing from `mailroom` or `parsers`."""
