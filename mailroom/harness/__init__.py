"""A local stand-in for the world outside: DWP's inbox (the simulator), the provider's relay and mailbox.
Imports mailroom.service and the layers below it; used by the CLI (harness, demo) and tests; 127.0.0.1 only.
"""
