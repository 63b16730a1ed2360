"""One submission: its status history, placement decision, result and comparison.

A submission outside the principal's scope is reported as not found, so a URL guessed for
another course tells nothing about it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from greengrader.bridge.privacy import pseudonym
from greengrader.errors import NotFound
from greengrader.models import Assignment, Decision, Result, StatusEvent, Submission
from greengrader.settings import Settings
from greengrader.web.comparison import Comparison
from greengrader.web.schemas import (
    CandidateView,
    DecisionView,
    Event,
    ResultView,
    SubmissionDetail,
    SubmissionStatus,
)
from greengrader.web.scope import Scope


def load_submission(session: Session, scope: Scope, submission_id: int) -> Submission:
    sub = session.scalars(
        select(Submission)
        .where(Submission.id == submission_id)
        .options(joinedload(Submission.assignment).joinedload(Assignment.course), selectinload(Submission.events))
    ).first()
    if sub is None or not scope.allows_assignment(sub.assignment_id):
        raise NotFound(f"submission {submission_id} not found")
    return sub


def status_of(session: Session, scope: Scope, submission_id: int) -> SubmissionStatus:
    row = session.execute(
        select(Submission.status, Submission.updated_at, Submission.assignment_id).where(Submission.id == submission_id)
    ).first()
    if row is None or not scope.allows_assignment(row.assignment_id):
        raise NotFound(f"submission {submission_id} not found")
    events = session.scalar(select(func.count()).where(StatusEvent.submission_id == submission_id)) or 0
    return SubmissionStatus(id=submission_id, status=row.status, updated_at=row.updated_at, events=int(events))


def submission_detail(
    session: Session, scope: Scope, submission_id: int, settings: Settings, comparison: Comparison
) -> SubmissionDetail:
    sub = load_submission(session, scope, submission_id)
    result = session.scalars(
        select(Result).where(Result.submission_id == sub.id).options(joinedload(Result.worker))
    ).first()
    decisions = session.scalars(
        select(Decision).where(Decision.submission_id == sub.id).order_by(Decision.id.desc())
    ).all()
    return SubmissionDetail(
        id=sub.id, gradescope_id=sub.gradescope_id, course_gradescope_id=sub.assignment.course.gradescope_id,
        assignment_id=sub.assignment_id, assignment_title=sub.assignment.title, status=sub.status,
        status_reason=sub.status_reason, region=sub.region, not_before=sub.not_before,
        received_at=sub.received_at, updated_at=sub.updated_at, attempts=sub.attempts,
        users=student_labels(sub.users, settings),
        events=[Event(at=e.at, from_status=e.from_status, to_status=e.to_status, reason=e.reason) for e in sub.events],
        decision=decision_view(decisions[0]) if decisions else None,
        earlier_decisions=max(0, len(decisions) - 1),
        result=result_view(result, settings.web_output_cap_bytes) if result else None,
        comparison=comparison.compare(sub, result),
    )


def student_labels(users: list[dict[str, Any]], settings: Settings) -> list[str]:
    """Student names as stored; pseudonymised here when ingest stored real ones."""
    key = settings.pseudonym_secret()
    out = []
    for user in users or []:
        name = str(user.get("name") or user.get("email") or user.get("sid") or "student")
        out.append(name if settings.pseudonymise else pseudonym(key, "name", name))
    return out


def decision_view(d: Decision) -> DecisionView:
    candidates = []
    for name, c in sorted((d.candidates or {}).items()):
        c = c if isinstance(c, dict) else {}
        candidates.append(CandidateView(
            region=name, zone=c.get("zone"), intensity=c.get("intensity"), expected_g=c.get("expected_g"),
            best_start=c.get("best_start"), feasible=bool(c.get("feasible", True)), why_not=c.get("why_not"),
            queue_wait_s=float(c.get("queue_wait_s") or 0.0), chosen=name == d.region,
        ))
    return DecisionView(
        id=d.id, policy=d.policy, region=d.region, start_at=d.start_at, created_at=d.created_at,
        expected_g=d.expected_g, runtime_estimate_s=d.runtime_estimate_s, reason=d.reason,
        fallback=d.fallback, candidates=candidates,
    )


def capped_tail(text: str | None, cap: int) -> tuple[str, bool]:
    """The last ``cap`` bytes of ``text`` (cut at a character boundary)."""
    data = (text or "").encode("utf-8", "replace")
    if len(data) <= cap:
        return data.decode("utf-8", "replace"), False
    return data[-cap:].decode("utf-8", "ignore"), True


def result_view(r: Result, cap: int) -> ResultView:
    output, truncated = capped_tail(r.stdout, cap)
    return ResultView(
        outcome=r.outcome, message=r.message, score=r.score, max_score=r.max_score, region=r.region,
        worker=r.worker.hostname if r.worker else None, started_at=r.started_at, finished_at=r.finished_at,
        runtime_s=r.runtime_s, turnaround_s=r.turnaround_s, cpu_s=r.cpu_s, energy_kwh=r.energy_kwh,
        carbon_g=r.carbon_g, intensity=r.intensity,
        # Recorded by executors that report their sandbox runtime (e.g. runsc); else unknown.
        sandbox=getattr(r, "sandbox_runtime", None), output=output, output_truncated=truncated,
    )
