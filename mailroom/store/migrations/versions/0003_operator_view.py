"""the operator's view: daemon heartbeats (who runs, last contact, outages) and the daily digest's days

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daemon_instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("boot_id", sa.String(length=64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process_started", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("config", sa.String(length=1024), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("smtp_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imap_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outages", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("daemon_instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_daemon_instances_heartbeat_at"), ["heartbeat_at"], unique=False)
    op.create_table(
        "digests",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"]),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("digests")
    with op.batch_alter_table("daemon_instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_daemon_instances_heartbeat_at"))
    op.drop_table("daemon_instances")
