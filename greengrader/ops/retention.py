"""Retention: delete student payload bytes and quarantined payloads past a cut-off.

What is kept: the submission row (ids, metadata, Gradescope's score), its status history,
scheduling decisions and grading results. What goes: the payload bytes of *finished*
submissions (graded, failed, error) received before the cut-off, and every quarantined
payload received before it. Unfinished submissions keep their bytes whatever their age,
because grading still needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ScalarSelect, delete, func, select

from greengrader.db import Database
from greengrader.models import TERMINAL, Quarantine, Submission, SubmissionPayload


@dataclass(frozen=True)
class PurgeCounts:
    payloads: int
    payload_bytes: int
    quarantined: int
    quarantined_bytes: int


def _finished_before(cutoff: datetime) -> ScalarSelect[int]:
    return (
        select(Submission.id)
        .where(Submission.received_at < cutoff, Submission.status.in_([s.value for s in TERMINAL]))
        .scalar_subquery()
    )


def purge(db: Database, cutoff: datetime, *, dry_run: bool = False) -> PurgeCounts:
    """Delete (or with ``dry_run`` only count) what is older than ``cutoff``; one transaction."""
    finished = _finished_before(cutoff)
    with db.transaction() as session:
        payloads, payload_bytes = session.execute(
            select(func.count(), func.coalesce(func.sum(Submission.size), 0))
            .select_from(SubmissionPayload)
            .join(Submission, Submission.id == SubmissionPayload.submission_id)
            .where(SubmissionPayload.submission_id.in_(finished))
        ).one()
        quarantined, quarantined_bytes = session.execute(
            select(func.count(), func.coalesce(func.sum(Quarantine.size), 0)).where(Quarantine.received_at < cutoff)
        ).one()
        if not dry_run:
            session.execute(delete(SubmissionPayload).where(SubmissionPayload.submission_id.in_(finished)))
            session.execute(delete(Quarantine).where(Quarantine.received_at < cutoff))
    return PurgeCounts(int(payloads), int(payload_bytes), int(quarantined), int(quarantined_bytes))
