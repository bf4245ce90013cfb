"""inbound messages: the cues that counted, why a person must review, and what a person applied

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        # Existing rows had no cues: an empty list, like a new row without any.
        batch_op.add_column(sa.Column("cues", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("review", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("applied_as", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("applied_as")
        batch_op.drop_column("review")
        batch_op.drop_column("cues")
