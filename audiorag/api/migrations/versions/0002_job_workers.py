"""Jobs across processes: the worker running a job, its heartbeat, and the attempts made.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("worker", sa.Text))
    op.add_column("jobs", sa.Column("heartbeat", sa.Float))
    op.add_column("jobs", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_index("jobs_by_status", "jobs", ["status", "created"])


def downgrade() -> None:
    op.drop_index("jobs_by_status", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("attempts", "heartbeat", "worker"):
            batch.drop_column(column)
