"""Courses and assignment versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from greengrader.models.base import Base, JSONType, UTCDateTime, utcnow


class Course(Base):
    __tablename__ = "course"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gradescope_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    assignments: Mapped[list[Assignment]] = relationship(back_populates="course")


class Assignment(Base):
    """One version of a Gradescope assignment's autograder (version = source hash)."""

    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("gradescope_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"), index=True)
    gradescope_id: Mapped[int] = mapped_column(BigInteger, index=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    total_points: Mapped[float | None]
    version: Mapped[str] = mapped_column(String(64))
    image_tag: Mapped[str | None] = mapped_column(String(300))
    # none | building | ready | broken
    build_status: Mapped[str] = mapped_column(String(20), default="none")
    build_log: Mapped[str | None] = mapped_column(Text)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    course: Mapped[Course] = relationship(back_populates="assignments")
