"""The GreenGrader data model (SQLAlchemy 2 typed ORM)."""

from __future__ import annotations

from greengrader.models.base import Base, utcnow
from greengrader.models.course import Assignment, Course
from greengrader.models.grading import Decision, Result, TestEvidence
from greengrader.models.infra import RegionRow, Worker
from greengrader.models.status import TERMINAL, Status
from greengrader.models.submission import Quarantine, StatusEvent, Submission, SubmissionPayload
from greengrader.models.web import ApiToken, AuditEvent, User, UserCourse

__all__ = [
    "TERMINAL",
    "ApiToken",
    "Assignment",
    "AuditEvent",
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
    "User",
    "UserCourse",
    "Worker",
    "utcnow",
]
