"""indexes for years of history: keyset pages of the listings, the outbox's claim, the sweep, MI, timelines

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00

Each index serves the query named beside it in mailroom/store/models.py; tests/unit/store/test_indexes.py
checks with EXPLAIN (SQLite and PostgreSQL) that the planner uses it. Only indexes are added, so the upgrade
keeps every row; on a large database it takes as long as building them (bench/scale.py: seconds).
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_submissions_state_id", "submissions", ["state", "id"]),
    ("ix_submissions_state_next_attempt_at", "submissions", ["state", "next_attempt_at"]),
    ("ix_submissions_created_at", "submissions", ["created_at"]),
    ("ix_notices_state_next_attempt_at", "notices", ["state", "next_attempt_at"]),
    ("ix_inbound_messages_state_id", "inbound_messages", ["state", "id"]),
    ("ix_inbound_messages_received_at", "inbound_messages", ["received_at"]),
    ("ix_clocks_state_due_at", "clocks", ["state", "due_at", "id"]),
    ("ix_escalations_created_at", "escalations", ["created_at"]),
    ("ix_audit_events_entity_entity_id_seq", "audit_events", ["entity", "entity_id", "seq"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
