"""dispatch fencing, claiming worker, schedule retries, worker concurrency

Revision ID: 0002_deadline
Revises: 0001
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from greengrader.models.base import JSONType

revision: str = "0002_deadline"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("dispatch", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("worker", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("schedule_tries", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("infra_failures", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("avoid_regions", JSONType, nullable=True))
    with op.batch_alter_table("worker") as batch:
        batch.add_column(sa.Column("concurrency", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("regions", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker") as batch:
        batch.drop_column("regions")
        batch.drop_column("concurrency")
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("avoid_regions")
        batch.drop_column("infra_failures")
        batch.drop_column("schedule_tries")
        batch.drop_column("worker")
        batch.drop_column("dispatch")
