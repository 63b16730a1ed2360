"""sandbox on every result; per-test agreement with Gradescope; evidence of nondeterministic tests

Revision ID: 0004_sandbox
Revises: 0001
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import greengrader.models.base

revision: str = "0004_sandbox"
down_revision: str | None = "0002_deadline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("result") as batch:
        batch.add_column(sa.Column("agreement", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("comparison", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True))
        batch.add_column(sa.Column("files_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("sandbox", sa.String(length=20), nullable=True))
        batch.create_index(batch.f("ix_result_agreement"), ["agreement"], unique=False)
        batch.create_index(batch.f("ix_result_files_digest"), ["files_digest"], unique=False)
    # Results graded before per-test comparison keep their score-based verdict.
    op.execute("UPDATE result SET agreement = CASE WHEN agrees THEN 'agrees' ELSE 'differs' END "
               "WHERE agrees IS NOT NULL")
    op.create_table(
        "test_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("test_key", sa.String(length=500), nullable=False),
        sa.Column("nondeterministic", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("detected_at", greengrader.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignment.id"],
                                name=op.f("fk_test_evidence_assignment_id_assignment")),
        sa.ForeignKeyConstraint(["submission_id"], ["submission.id"],
                                name=op.f("fk_test_evidence_submission_id_submission")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_evidence")),
        sa.UniqueConstraint("assignment_id", "test_key", name=op.f("uq_test_evidence_assignment_id_test_key")),
    )
    op.create_index(op.f("ix_test_evidence_assignment_id"), "test_evidence", ["assignment_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_test_evidence_assignment_id"), table_name="test_evidence")
    op.drop_table("test_evidence")
    with op.batch_alter_table("result") as batch:
        batch.drop_index(batch.f("ix_result_files_digest"))
        batch.drop_index(batch.f("ix_result_agreement"))
        batch.drop_column("sandbox")
        batch.drop_column("files_digest")
        batch.drop_column("comparison")
        batch.drop_column("agreement")
