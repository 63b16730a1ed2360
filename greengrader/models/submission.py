"""Submissions, their raw payloads, status history and quarantined payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import inspect as orm_state
from sqlalchemy.orm import Mapped, deferred, mapped_column, object_session, relationship

from greengrader.errors import InvalidTransition
from greengrader.models.base import Base, JSONType, UTCDateTime, utcnow
from greengrader.models.course import Assignment
from greengrader.models.status import TERMINAL, Status, can_transition


class Submission(Base):
    __tablename__ = "submission"
    __table_args__ = (
        UniqueConstraint("gradescope_id", "sha256"),
        Index("ix_submission_status_not_before", "status", "not_before"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gradescope_id: Mapped[int] = mapped_column(BigInteger, index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    metadata_json: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    users: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    hostname: Mapped[str | None] = mapped_column(String(300))
    gradescope_score: Mapped[float | None] = mapped_column(Float)
    gradescope_results: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    topic: Mapped[str | None] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default=Status.RECEIVED.value)
    status_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    region: Mapped[str | None] = mapped_column(String(100))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Celery task id of the grade currently owning this submission (idempotency fence).
    task_id: Mapped[str | None] = mapped_column(String(64))
    # Fencing token of the grade message currently meant to run this submission: bumped on
    # every send, carried by the message, checked on claim. A message whose number is not
    # the row's (re-sent after loss, moved off a dead region) is stale and does nothing.
    dispatch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Celery node that claimed the running grade (its heartbeat tells alive from dead).
    worker: Mapped[str | None] = mapped_column(String(300))
    # How often ``schedule`` was re-sent for a row still ``received`` (backoff and cap).
    schedule_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Regions that could not start this job (placement avoids them; cleared when all have).
    avoid_regions: Mapped[list[str] | None] = mapped_column(JSONType)
    # Consecutive infrastructure failures (Docker down or racing) since the last real run.
    infra_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    assignment: Mapped[Assignment] = relationship()
    payload: Mapped[SubmissionPayload] = relationship(
        back_populates="submission", uselist=False, cascade="all, delete-orphan"
    )
    events: Mapped[list[StatusEvent]] = relationship(
        back_populates="submission", order_by="StatusEvent.id", cascade="all, delete-orphan"
    )

    def move_to(self, target: Status, reason: str | None = None, *, now: datetime | None = None) -> None:
        """The one place a status changes: validates the transition and records history."""
        current = Status(self.status)
        if not can_transition(current, target):
            raise InvalidTransition(current.value, target.value)
        at = now or utcnow()
        event = StatusEvent(from_status=current.value, to_status=target.value, reason=reason, at=at)
        session = object_session(self)
        if session is None or self.id is None or "events" in orm_state(self).dict:
            self.events.append(event)
        else:
            # Appending would first load the whole history (one SELECT per transition, on
            # every job's hot path); the row needs only its submission. A later read of
            # ``events`` in this session autoflushes it first.
            event.submission_id = self.id
            session.add(event)
        if target == Status.RECEIVED and current in TERMINAL:
            # A regrade is a fresh job: earlier tries do not count against it.
            self.attempts, self.schedule_tries, self.infra_failures = 0, 0, 0
        self.status = target.value
        self.status_reason = reason
        self.updated_at = at


class SubmissionPayload(Base):
    """Raw payload bytes in a side table so listing submissions never loads them."""

    __tablename__ = "submission_payload"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), primary_key=True)
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))

    submission: Mapped[Submission] = relationship(back_populates="payload")


class StatusEvent(Base):
    """Status history with timestamps (one row per transition)."""

    __tablename__ = "status_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="events")


class Quarantine(Base):
    """A rejected payload, kept with its reason (raw bytes up to a cap)."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(100), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str | None] = mapped_column(String(300))
    data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    truncated: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
