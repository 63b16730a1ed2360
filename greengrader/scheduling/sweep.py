"""The beat sweep: keeps every submission moving without long ETAs in the broker.

Each pass, in this order:

1. **release** ``scheduled`` rows whose ``not_before`` has come: claim -> ``queued``, send ``grade``;
2. **re-enqueue** ``received`` rows older than ``received_grace_s`` (a lost ``schedule``);
3. **recover** ``queued``/``running`` rows untouched for ``grade_timeout_s + stuck_margin_s``
   (a lost message or a dead worker): send ``grade`` again, or after ``max_attempts`` mark
   them ``error`` with the reason.

Every claim is one statement, ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED
LIMIT n) RETURNING``, committed before anything is sent: a second sweep running by mistake
skips the rows the first holds, and once committed the rows no longer match (their status
or ``updated_at`` changed), so no row is dispatched twice. SQLite ignores ``FOR UPDATE``
but serialises writers, and the UPDATE re-checks the WHERE under its write lock, which gives
the same guarantee for the embedded default.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, select, update
from sqlalchemy.orm import Session

from greengrader.context import Context
from greengrader.errors import BrokerUnavailable, UnknownRegion
from greengrader.models import Status, StatusEvent, Submission
from greengrader.scheduling.service import send_grade, send_schedule

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one pass did (ids per action), for logs, the CLI and tests."""

    released: list[int] = field(default_factory=list)
    rescheduled: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    errored: list[int] = field(default_factory=list)
    send_failures: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.released, self.rescheduled, self.requeued, self.errored, self.send_failures))


def _claim(
    session: Session, where: ColumnElement[bool], values: dict[str, Any], *, from_status: str | None,
    to_status: str, reason: str, now: datetime, limit: int, order: Any,
) -> list[tuple[int, str | None]]:
    """Atomically move up to ``limit`` rows matching ``where``; returns (id, region) claimed."""
    ids = (
        select(Submission.id).where(where).order_by(order).limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Submission)
        .where(Submission.id.in_(ids.scalar_subquery()))
        .values(status=to_status, status_reason=reason, updated_at=now, **values)
        .returning(Submission.id, Submission.region, Submission.status)
        .execution_options(synchronize_session=False)
    )
    rows = [(int(r[0]), r[1]) for r in session.execute(stmt).all()]
    if rows:
        session.execute(insert(StatusEvent), [
            {"submission_id": i, "from_status": from_status, "to_status": to_status, "reason": reason, "at": now}
            for i, _ in rows
        ])
    return rows


def run_sweep(ctx: Context, *, limit: int | None = None) -> SweepReport:
    """One sweep pass (the body of the ``greengrader.sweep`` beat task)."""
    report = SweepReport()
    n = limit or ctx.settings.sweep_batch
    _release(ctx, n, report)
    _reschedule(ctx, n, report)
    _recover(ctx, n, report)
    if report:
        log.info(
            "sweep: released %d, rescheduled %d, requeued %d, errored %d, send failures %d",
            len(report.released), len(report.rescheduled), len(report.requeued),
            len(report.errored), len(report.send_failures),
        )
    return report


def release_due(ctx: Context, ids: Sequence[int] | None = None, *, force: bool = False,
                limit: int | None = None) -> SweepReport:
    """Release ``scheduled`` rows now: those due (or, with ``force``, the given ones)."""
    report = SweepReport()
    _release(ctx, limit or ctx.settings.sweep_batch, report, ids=ids, force=force)
    return report


def _release(ctx: Context, n: int, report: SweepReport, *, ids: Sequence[int] | None = None,
             force: bool = False) -> None:
    now = ctx.now()
    where = Submission.status == Status.SCHEDULED.value
    if not force:
        where = and_(where, Submission.not_before <= now)
    if ids is not None:
        where = and_(where, Submission.id.in_(list(ids)))
    with ctx.db.transaction() as session:
        claimed = _claim(
            session, where, {}, from_status=Status.SCHEDULED.value, to_status=Status.QUEUED.value,
            reason="released by sweep", now=now, limit=n, order=Submission.not_before,
        )
    for sid, region in claimed:
        if _send(ctx, sid, region, report, back_to=Status.SCHEDULED):
            report.released.append(sid)


def _reschedule(ctx: Context, n: int, report: SweepReport) -> None:
    now = ctx.now()
    cutoff = now - timedelta(seconds=ctx.settings.received_grace_s)
    where = and_(Submission.status == Status.RECEIVED.value, Submission.updated_at <= cutoff)
    with ctx.db.transaction() as session:
        # Touching updated_at is the claim: the row stops matching for another grace period.
        claimed = _claim(
            session, where, {}, from_status=Status.RECEIVED.value, to_status=Status.RECEIVED.value,
            reason="schedule re-sent by sweep", now=now, limit=n, order=Submission.updated_at,
        )
    for sid, _ in claimed:
        try:
            send_schedule(ctx, sid)
            report.rescheduled.append(sid)
        except BrokerUnavailable as exc:
            log.warning("%s; will retry next pass", exc)
            report.send_failures.append(sid)


def _recover(ctx: Context, n: int, report: SweepReport) -> None:
    s = ctx.settings
    now = ctx.now()
    cutoff = now - timedelta(seconds=s.grade_timeout_s + s.stuck_margin_s)
    stuck = and_(
        Submission.status.in_([Status.QUEUED.value, Status.RUNNING.value]), Submission.updated_at <= cutoff
    )
    with ctx.db.transaction() as session:
        for status in (Status.QUEUED, Status.RUNNING):
            reason = (
                f"gave up: stuck in {status.value} past the time limit after {s.max_attempts} attempts"
            )
            report.errored += [i for i, _ in _claim(
                session, and_(stuck, Submission.status == status.value, Submission.attempts >= s.max_attempts),
                {"task_id": None}, from_status=status.value, to_status=Status.ERROR.value,
                reason=reason, now=now, limit=n, order=Submission.updated_at,
            )]
        claimed: list[tuple[int, str | None]] = []
        for status, bump in ((Status.QUEUED, 1), (Status.RUNNING, 0)):
            # A lost message never reached `grade` (which counts attempts on claim): count it here.
            claimed += _claim(
                session, and_(stuck, Submission.status == status.value, Submission.attempts < s.max_attempts),
                {"attempts": Submission.attempts + bump, "task_id": None},
                from_status=status.value, to_status=Status.QUEUED.value,
                reason=f"re-queued by sweep: stuck in {status.value}", now=now, limit=n,
                order=Submission.updated_at,
            )
    for sid, region in claimed:
        if _send(ctx, sid, region, report, back_to=None):
            report.requeued.append(sid)


def _send(ctx: Context, sid: int, region: str | None, report: SweepReport, *, back_to: Status | None) -> bool:
    try:
        if region is None:
            raise UnknownRegion(f"submission {sid} has no region")
        send_grade(ctx, sid, region)
        return True
    except UnknownRegion as exc:
        # The registry changed under it: decide again.
        _move(ctx, sid, Status.QUEUED, Status.SCHEDULED, f"{exc}; rescheduling")
        _move(ctx, sid, Status.SCHEDULED, Status.RECEIVED, f"{exc}; rescheduling")
        report.send_failures.append(sid)
    except BrokerUnavailable as exc:
        log.warning("%s; will retry next pass", exc)
        if back_to is not None:
            _move(ctx, sid, Status.QUEUED, back_to, f"enqueue failed: {exc}")
        report.send_failures.append(sid)
    return False


def _move(ctx: Context, sid: int, current: Status, target: Status, reason: str) -> None:
    with ctx.db.transaction() as session:
        sub = session.get(Submission, sid, with_for_update=True)
        if sub is not None and sub.status == current.value:
            sub.move_to(target, reason[:500], now=ctx.now())
