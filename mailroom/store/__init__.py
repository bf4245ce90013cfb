"""The store: engine and sessions, models, queries, the audit chain, the document store, migrations.
Imports mailroom.core only (plus sqlmodel, SQLAlchemy and Alembic).
"""
