"""What a principal may see: every course (admins) or the assignments of their courses (staff).

Staff scoping is resolved once per request to assignment ids, so every submission query
filters on ``submission.assignment_id`` (indexed) instead of joining up to the course.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, false, select
from sqlalchemy.orm import Session

from greengrader.models import Assignment, Course, Submission
from greengrader.web.accounts import Principal

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Scope:
    """``assignment_ids`` None means everything (an admin)."""

    assignment_ids: tuple[int, ...] | None
    course_ids: tuple[int, ...] | None  # Gradescope course ids the staff user was given

    @property
    def everything(self) -> bool:
        return self.assignment_ids is None

    def condition(self) -> ColumnElement[bool] | None:
        if self.assignment_ids is None:
            return None
        if not self.assignment_ids:
            return false()
        return Submission.assignment_id.in_(self.assignment_ids)

    def apply(self, stmt: S) -> S:
        cond = self.condition()
        return stmt if cond is None else stmt.where(cond)

    def allows_assignment(self, assignment_id: int) -> bool:
        return self.assignment_ids is None or assignment_id in self.assignment_ids


def scope_for(session: Session, principal: Principal) -> Scope:
    if principal.is_admin:
        return Scope(None, None)
    courses = tuple(sorted(principal.courses))
    ids = session.scalars(
        select(Assignment.id).join(Course, Assignment.course_id == Course.id).where(Course.gradescope_id.in_(courses))
    ).all()
    return Scope(tuple(ids), courses)
