"""The GreenGrader data model (SQLAlchemy 2 typed ORM)."""

from __future__ import annotations

from greengrader.models.base import Base, utcnow
from greengrader.models.course import Assignment, Course
from greengrader.models.grading import Decision, Result, TestEvidence
from greengrader.models.infra import RegionRow, Worker
from greengrader.models.status import TERMINAL, Status
from greengrader.models.submission import Quarantine, StatusEvent, Submission, SubmissionPayload

__all__ = [
    "TERMINAL",
    "Assignment",
    "Base",
    "Course",
    "Decision",
    "Quarantine",
    "RegionRow",
    "Result",
    "Status",
    "StatusEvent",
    "Submission",
    "SubmissionPayload",
    "TestEvidence",
    "Worker",
    "utcnow",
]
