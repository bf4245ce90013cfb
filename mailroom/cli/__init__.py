"""The command line: the click frame, one module per command group, the doctor and the demo.
Imports mailroom.daemon, mailroom.harness, mailroom.service and the layers below them.
"""
