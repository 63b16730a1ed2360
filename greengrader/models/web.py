"""Dashboard accounts: users, their courses, API tokens and the audit log.

Also declares the indexes the dashboard's list and overview queries rely on (on tables
defined elsewhere), so they are created by the same migration as the tables here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from greengrader.models.base import Base, JSONType, UTCDateTime, utcnow
from greengrader.models.grading import Result
from greengrader.models.submission import Submission

ROLES = ("staff", "admin")


class User(Base):
    """A course-staff or admin account of the dashboard."""

    __tablename__ = "web_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(300))
    # Bumped by a password reset: every session cookie signed before it stops working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    courses: Mapped[list[UserCourse]] = relationship(
        cascade="all, delete-orphan", order_by="UserCourse.course_gradescope_id"
    )
    tokens: Mapped[list[ApiToken]] = relationship(cascade="all, delete-orphan")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class UserCourse(Base):
    """A course a staff user may see, by Gradescope course id (the course row may not exist yet)."""

    __tablename__ = "web_user_course"
    __table_args__ = (UniqueConstraint("user_id", "course_gradescope_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"), index=True)
    course_gradescope_id: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "web_api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Who did what from where: logins (and failures, which rate-limit login), regrades, exports."""

    __tablename__ = "web_audit"
    __table_args__ = (Index("ix_web_audit_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_email: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40))
    # The login e-mail tried, or "submission:<id>"
    target: Mapped[str | None] = mapped_column(String(320))
    client_ip: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)


# Keyset pagination newest-first under each filter, and "received since" windows.
Index("ix_submission_status_id", Submission.status, Submission.id)
Index("ix_submission_region_id", Submission.region, Submission.id)
Index("ix_submission_assignment_id_id", Submission.assignment_id, Submission.id)
Index("ix_submission_received_at_status", Submission.received_at, Submission.status)
Index("ix_result_agrees_submission_id", Result.agrees, Result.submission_id)
Index("ix_result_finished_at", Result.finished_at)
