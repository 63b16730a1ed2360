"""Scheduling decisions and grading results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from greengrader.models.base import Base, JSONType, UTCDateTime, utcnow
from greengrader.models.infra import Worker
from greengrader.models.submission import Submission


class Decision(Base):
    __tablename__ = "decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    policy: Mapped[str] = mapped_column(String(100))
    # {region: {"intensity": g/kWh, "expected_g": gCO2, ...}}
    candidates: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    region: Mapped[str] = mapped_column(String(100))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expected_g: Mapped[float | None] = mapped_column(Float)
    runtime_estimate_s: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    fallback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    submission: Mapped[Submission] = relationship()


class Result(Base):
    __tablename__ = "result"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), unique=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"))
    region: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(30))
    message: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    tests: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    raw_results: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    stdout: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    runtime_s: Mapped[float | None] = mapped_column(Float)
    turnaround_s: Mapped[float | None] = mapped_column(Float)
    cpu_s: Mapped[float | None] = mapped_column(Float)
    energy_kwh: Mapped[float | None] = mapped_column(Float)
    carbon_g: Mapped[float | None] = mapped_column(Float)
    intensity: Mapped[float | None] = mapped_column(Float)
    # True unless the agreement is "differs" (None: Gradescope's results unknown)
    agrees: Mapped[bool | None]
    # agrees | differs | nondeterministic (greengrader/agreement); None: unknown
    agreement: Mapped[str | None] = mapped_column(String(20), index=True)
    # {"tests": [{key, name, number, verdict, ours, gradescope}], "leaderboard": [...], ...}
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # sha256 of the student's files: identical submissions share it
    files_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    # gvisor | runc: the kernel the student's code ran on
    sandbox: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    submission: Mapped[Submission] = relationship()
    worker: Mapped[Worker | None] = relationship()


class TestEvidence(Base):
    """What re-runs showed about one test of an assignment version that differed from
    Gradescope: its score varies for the same files (nondeterministic) or it does not."""

    __tablename__ = "test_evidence"
    __table_args__ = (UniqueConstraint("assignment_id", "test_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id"), index=True)
    test_key: Mapped[str] = mapped_column(String(500))
    nondeterministic: Mapped[bool]
    evidence: Mapped[str] = mapped_column(Text)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"))
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
