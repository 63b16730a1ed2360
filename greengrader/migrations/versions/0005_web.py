"""dashboard: users, their courses, API tokens, audit log; list and overview indexes

Revision ID: 0005_web
Revises: 0001
Create Date: 2026-12-01 11:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import greengrader.models.base

revision: str = "0005_web"
down_revision: str | None = "0004_sandbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = greengrader.models.base.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

INDEXES = (
    ("ix_submission_status_id", "submission", ["status", "id"]),
    ("ix_submission_region_id", "submission", ["region", "id"]),
    ("ix_submission_assignment_id_id", "submission", ["assignment_id", "id"]),
    ("ix_submission_received_at_status", "submission", ["received_at", "status"]),
    ("ix_result_agrees_submission_id", "result", ["agrees", "submission_id"]),
    ("ix_result_finished_at", "result", ["finished_at"]),
)


def upgrade() -> None:
    op.create_table(
        "web_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_user")),
        sa.UniqueConstraint("email", name=op.f("uq_web_user_email")),
    )
    op.create_table(
        "web_user_course",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("course_gradescope_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["web_user.id"], name=op.f("fk_web_user_course_user_id_web_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_user_course")),
        sa.UniqueConstraint("user_id", "course_gradescope_id", name=op.f("uq_web_user_course_user_id_course_gradescope_id")),
    )
    op.create_index(op.f("ix_web_user_course_user_id"), "web_user_course", ["user_id"])
    op.create_table(
        "web_api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_used_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["web_user.id"], name=op.f("fk_web_api_token_user_id_web_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_api_token")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_web_api_token_token_sha256")),
    )
    op.create_index(op.f("ix_web_api_token_user_id"), "web_api_token", ["user_id"])
    op.create_table(
        "web_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("user_email", sa.String(length=320), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=True),
        sa.Column("client_ip", sa.String(length=100), nullable=True),
        sa.Column("detail", JSON, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_audit")),
    )
    op.create_index("ix_web_audit_action_at", "web_audit", ["action", "at"])
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index("ix_web_audit_action_at", table_name="web_audit")
    op.drop_table("web_audit")
    op.drop_index(op.f("ix_web_api_token_user_id"), table_name="web_api_token")
    op.drop_table("web_api_token")
    op.drop_index(op.f("ix_web_user_course_user_id"), table_name="web_user_course")
    op.drop_table("web_user_course")
    op.drop_table("web_user")
