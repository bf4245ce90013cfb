"""A local stand-in for the world outside: DWP's inbox (the simulator), the provider's relay and mailbox.

For demos, tests and operators' rehearsals only; everything listens on 127.0.0.1.
"""
