"""The submissions list: filters, search by Gradescope id, keyset pagination newest first.

Keyset (``id < before``) instead of OFFSET: every page is one index range scan on
``submission (<filter column>, id)``, so page 2000 costs what page 1 does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.orm import Session

from greengrader.errors import GreengraderError
from greengrader.models import Assignment, Course, Quarantine, Result, Status, Submission
from greengrader.web.schemas import QuarantinePage, QuarantineRow, SubmissionPage, SubmissionRow
from greengrader.web.scope import S, Scope

AGREEMENT = ("agrees", "differs", "unknown")


class BadFilter(GreengraderError):
    """A list filter that cannot be applied (the message says which and why)."""


@dataclass(frozen=True)
class Filters:
    course: int | None = None  # Gradescope course id
    assignment: int | None = None  # database id of an assignment version
    status: str | None = None
    region: str | None = None
    agreement: str | None = None
    q: int | None = None  # a Gradescope submission id
    before: int | None = None  # keyset cursor: submissions with a smaller id

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in {s.value for s in Status}:
            raise BadFilter(f"unknown status {self.status!r}")
        if self.agreement is not None and self.agreement not in AGREEMENT:
            raise BadFilter(f"agreement must be one of {', '.join(AGREEMENT)}")

    def as_dict(self) -> dict[str, str]:
        """The set filters (without the cursor), as query-string values."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and f.name != "before":
                out[f.name] = str(value)
        return out


def _filtered(stmt: S, filters: Filters) -> S:
    if filters.course is not None:
        courses = select(Assignment.id).join(Course, Assignment.course_id == Course.id).where(
            Course.gradescope_id == filters.course
        )
        stmt = stmt.where(Submission.assignment_id.in_(courses))
    if filters.assignment is not None:
        stmt = stmt.where(Submission.assignment_id == filters.assignment)
    if filters.status is not None:
        stmt = stmt.where(Submission.status == filters.status)
    if filters.region is not None:
        stmt = stmt.where(Submission.region == filters.region)
    if filters.agreement == "agrees":
        stmt = stmt.where(Result.agrees.is_(True))
    elif filters.agreement == "differs":
        stmt = stmt.where(Result.agrees.is_(False))
    elif filters.agreement == "unknown":
        stmt = stmt.where(Result.agrees.is_(None))
    if filters.q is not None:
        stmt = stmt.where(Submission.gradescope_id == filters.q)
    if filters.before is not None:
        stmt = stmt.where(Submission.id < filters.before)
    return stmt


def submissions_page(session: Session, scope: Scope, filters: Filters, limit: int) -> SubmissionPage:
    stmt = (
        select(
            Submission.id, Submission.gradescope_id, Submission.status, Submission.region,
            Submission.received_at, Submission.gradescope_score, Submission.assignment_id,
            Assignment.title, Course.gradescope_id.label("course_gs"),
            Result.score, Result.max_score, Result.agrees, Result.carbon_g, Result.runtime_s,
        )
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .join(Course, Assignment.course_id == Course.id)
        .outerjoin(Result, Result.submission_id == Submission.id)
        .order_by(Submission.id.desc())
        .limit(limit + 1)
    )
    rows = session.execute(scope.apply(_filtered(stmt, filters))).all()
    page = [
        SubmissionRow(
            id=r.id, gradescope_id=r.gradescope_id, course_gradescope_id=r.course_gs, assignment_id=r.assignment_id,
            assignment_title=r.title, status=r.status, region=r.region, received_at=r.received_at,
            score=r.score, max_score=r.max_score, gradescope_score=r.gradescope_score, agrees=r.agrees,
            carbon_g=r.carbon_g, runtime_s=r.runtime_s,
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return SubmissionPage(rows=page, next_before=page[-1].id if more and page else None, filters=filters.as_dict())


def quarantine_page(session: Session, before: int | None, limit: int) -> QuarantinePage:
    stmt = select(
        Quarantine.id, Quarantine.reason, Quarantine.detail, Quarantine.sha256, Quarantine.size,
        Quarantine.topic, Quarantine.truncated, Quarantine.received_at,
    ).order_by(Quarantine.id.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(Quarantine.id < before)
    rows = session.execute(stmt).all()
    page = [QuarantineRow.model_validate(r._asdict()) for r in rows[:limit]]
    return QuarantinePage(rows=page, next_before=page[-1].id if len(rows) > limit and page else None)
