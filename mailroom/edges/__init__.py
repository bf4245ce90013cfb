"""The world outside the process that is not SMTP: IMAP mailbox, OAuth tokens, systemd notify, leader lock.
Imports mailroom.core only (the config and secret files and logging set-up live here too).
"""
