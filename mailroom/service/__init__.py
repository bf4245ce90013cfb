"""The use cases, one module per job: cases, queue, intake, sending, inbound, clocks, records, notices.
Imports core, store, edges, parsers and outbox: the one layer that combines them.
"""
