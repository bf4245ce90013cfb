"""The pure core: states, working days, deadlines, matching, claims, retry, identity, MI, settings, errors.
Imports nothing of ours: no I/O and no clock of its own (`now` is always a parameter).
"""
