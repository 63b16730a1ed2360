"""Claiming a submission for grading, and checking later that this task still owns it.

A claim locks the row, refuses what there is nothing to do for (terminal, a stale
message, another task's fresh run, too many attempts) and moves the rest to ``running``
for this task; every later write first checks :func:`owned`, because a rerun may have
taken the job over meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from greengrader.context import Context
from greengrader.errors import NotFound
from greengrader.models import Status, Submission, SubmissionPayload
from greengrader.models.status import TERMINAL
from greengrader.ops.metrics import GRADES

log = logging.getLogger(__name__)


@dataclass
class Claim:
    """What grading needs from the claimed row, read in the claiming transaction."""

    payload: bytes
    region: str
    received_at: datetime
    gradescope_score: float | None
    assignment_id: int
    assignment_key: str
    limits: dict[str, Any]
    broken_log: str | None
    image_ready: str | None  # the image tag when the version is known to be built


def claim_submission(
    ctx: Context, submission_id: int, task_id: str, worker: str | None, dispatch: int | None
) -> Claim | None:
    """Move the submission to ``running`` for ``task_id``; None when there is nothing to do."""
    with ctx.db.transaction() as session:
        # One round trip: the row (locked), its assignment and payload bytes; the status
        # history is not loaded (appending to it only inserts).
        sub = session.scalars(
            select(Submission)
            .where(Submission.id == submission_id)
            .options(
                joinedload(Submission.assignment, innerjoin=True),
                joinedload(Submission.payload, innerjoin=True).undefer(SubmissionPayload.data),
            )
            .with_for_update(of=Submission)
        ).first()
        if sub is None:
            raise NotFound(f"submission {submission_id} does not exist")
        skip_history_load(sub)
        status = Status(sub.status)
        if status in TERMINAL:
            log.info("submission %s already %s; nothing to do", submission_id, status.value)
            return None
        now = ctx.now()
        if dispatch is not None and dispatch != sub.dispatch:
            log.info("submission %s: message %s is stale (current %s); skipping", submission_id, dispatch, sub.dispatch)
            return None
        if status == Status.RUNNING and sub.task_id != task_id:
            log.info("submission %s is being graded by task %s; skipping", submission_id, sub.task_id)
            return None
        if sub.attempts >= ctx.settings.max_attempts:
            # Each claim counts: a job that keeps killing its grading process ends here
            # instead of being redelivered forever.
            reason = (f"gave up after {sub.attempts} attempts: the grading process died or was lost "
                      f"each time (last: {sub.status_reason or status.value})")
            sub.move_to(Status.ERROR, reason[:2000], now=now)
            GRADES.labels("error", sub.region or "").inc()
            return None
        if status == Status.RECEIVED:
            sub.move_to(Status.SCHEDULED, "graded directly", now=now)
        if Status(sub.status) in (Status.SCHEDULED, Status.RUNNING):
            sub.move_to(Status.QUEUED, "rerun" if status == Status.RUNNING else None, now=now)
        sub.move_to(Status.RUNNING, f"task {task_id}", now=now)
        sub.task_id, sub.worker = task_id, worker
        sub.attempts += 1
        assignment = sub.assignment
        broken = None
        if assignment.build_status == "broken":
            broken = f"autograder setup failed earlier for this assignment version: {tail(assignment.build_log)}"
        return Claim(
            payload=sub.payload.data,
            region=sub.region or ctx.settings.default_region,
            received_at=sub.received_at,
            gradescope_score=sub.gradescope_score,
            assignment_id=assignment.id,
            assignment_key=str(assignment.gradescope_id),
            limits=dict(assignment.limits or {}),
            broken_log=broken,
            image_ready=assignment.image_tag if assignment.build_status == "ready" else None,
        )


def tail(text: str | None, lines: int = 5) -> str:
    return " | ".join((text or "").strip().splitlines()[-lines:])[-1000:]


def skip_history_load(sub: Submission) -> None:
    # move_to() appends a StatusEvent; mark the history as loaded (empty) so appending
    # inserts one row instead of first selecting the whole history.
    set_committed_value(sub, "events", [])


def owned(session: Session, submission_id: int, task_id: str) -> Submission | None:
    """The submission locked, if this task still owns it (a newer rerun may have taken over)."""
    sub = session.scalars(select(Submission).where(Submission.id == submission_id).with_for_update()).first()
    if sub is not None:
        skip_history_load(sub)
    if sub is None or sub.status != Status.RUNNING.value or sub.task_id != task_id:
        log.warning("submission %s no longer owned by task %s; result discarded", submission_id, task_id)
        return None
    return sub
