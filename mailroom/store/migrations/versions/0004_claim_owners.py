"""claims know their owner: the daemon instance holding a submission's or a notice's lease

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Claims made before this migration have no owner: for them the lease timeout stays the only way back.
    for table in ("submissions", "notices"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in ("notices", "submissions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("claimed_by")
