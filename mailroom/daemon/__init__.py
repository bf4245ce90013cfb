"""The daemon: runners, the IMAP watcher, wiring from settings to parts, signals and the scheduler.
Imports mailroom.service and the layers below it (core, store, edges).
"""
