"""The beat sweep: keeps every submission moving without long ETAs in the broker.

Each pass, in this order:

1. **recover** ``running`` rows whose worker is gone (heartbeat past the limit, or the
   worker restarted since it claimed the job) or that have run past their *own*
   assignment's limit (plus the image-build bound while the image is not built, plus
   ``stuck_margin_s``): back to ``queued`` with a new dispatch number;
2. **move** ``scheduled``/``queued`` rows off dead regions (no live worker for the
   heartbeat limit plus ``region_dead_after_s``) back to ``schedule``, when some other
   region is live;
3. **release** ``scheduled`` rows whose ``not_before`` has come: ``queued``, send ``grade``;
4. **place** rows that waited ``scheduled`` without a region once a worker is live;
5. **re-send** ``schedule`` for ``received`` rows, with doubling backoff and a cap;
6. **re-send** ``grade`` for ``queued`` rows whose message the broker no longer holds
   (see :mod:`~greengrader.scheduling.inventory`). A job waiting in a live queue is never
   re-sent, never counted as an attempt and never timed out, however long the queue.

Attempts are counted where a job is really tried: on claim by ``grade`` (which ends a
job that keeps killing its grading process after ``max_attempts``). Every message
carries the row's dispatch number and ``grade`` ignores any other, so a job re-sent or
moved is never graded twice even when its old message turns up later.

Every claim is one statement, ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED
LIMIT n) RETURNING``, committed before anything is sent: a second sweep running by mistake
skips the rows the first holds, and once committed the rows no longer match, so no row
is dispatched twice. SQLite ignores ``FOR UPDATE`` but serialises writers, and the UPDATE
re-checks the WHERE under its write lock, which gives the same guarantee.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, select, update
from sqlalchemy.orm import Session

from greengrader.context import Context
from greengrader.errors import BrokerUnavailable, UnknownRegion
from greengrader.grading.executors.base import Limits
from greengrader.models import Assignment, Status, StatusEvent, Submission
from greengrader.scheduling.inventory import Inventory, inventory_for
from greengrader.scheduling.liveness import (
    RegionLiveness,
    dead_regions,
    region_liveness,
    worker_is_live,
    worker_states,
)
from greengrader.scheduling.service import MOVED_OFF, send_grade, send_schedule
from greengrader.times import as_utc

log = logging.getLogger(__name__)

SCHEDULE_MAX_TRIES = 8  # re-sends of `schedule` before a row that cannot be placed is `error`
SCHEDULE_BACKOFF_CAP_S = 3600.0


@dataclass
class SweepReport:
    """What one pass did (ids per action), for logs, the CLI and tests."""

    released: list[int] = field(default_factory=list)
    rescheduled: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    placed: list[int] = field(default_factory=list)
    errored: list[int] = field(default_factory=list)
    send_failures: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)

    def summary(self) -> str:
        return ", ".join(f"{name} {len(getattr(self, name))}" for name in self.__dataclass_fields__)


Claimed = list[tuple[int, str | None, int]]  # (id, region, dispatch)


def _claim(
    session: Session, where: ColumnElement[bool], values: dict[str, Any], *, from_status: str | None,
    to_status: str, reason: str, now: datetime, limit: int, order: Any,
) -> Claimed:
    """Atomically move up to ``limit`` rows matching ``where``; returns what was claimed."""
    ids = (
        select(Submission.id).where(where).order_by(order).limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Submission)
        .where(Submission.id.in_(ids.scalar_subquery()))
        .values(status=to_status, status_reason=reason, updated_at=now, **values)
        .returning(Submission.id, Submission.region, Submission.dispatch)
        .execution_options(synchronize_session=False)
    )
    rows = [(int(r[0]), r[1], int(r[2])) for r in session.execute(stmt).all()]
    if rows:
        session.execute(insert(StatusEvent), [
            {"submission_id": i, "from_status": from_status, "to_status": to_status, "reason": reason, "at": now}
            for i, _, _ in rows
        ])
    return rows


@dataclass
class _Pass:
    """One pass's view: the clock, limits and which regions can grade."""

    ctx: Context
    n: int
    now: datetime
    liveness: Mapping[str, RegionLiveness]
    report: SweepReport

    @property
    def dead(self) -> list[str]:
        return dead_regions(self.liveness, self.now, self.ctx.settings)

    @property
    def any_live(self) -> bool:
        return any(s.live for s in self.liveness.values())


def run_sweep(ctx: Context, *, limit: int | None = None, inventory: Inventory | None = None) -> SweepReport:
    """One sweep pass (the body of the ``greengrader.sweep`` beat task)."""
    p = _new_pass(ctx, limit)
    _recover_running(p)
    _move_off_dead_regions(p)
    _release(p)
    _place_waiting(p)
    _reschedule(p)
    _recover_lost(p, inventory or ctx.memo("inventory", lambda: inventory_for(ctx.settings)))
    if p.report:
        log.info("sweep: %s", p.report.summary())
    return p.report


def _new_pass(ctx: Context, limit: int | None) -> _Pass:
    now = ctx.now()
    with ctx.db.session() as session:
        liveness = region_liveness(session, ctx.regions, now, ctx.settings)
    return _Pass(ctx, limit or ctx.settings.sweep_batch, now, liveness, SweepReport())


def release_due(ctx: Context, ids: Sequence[int] | None = None, *, force: bool = False,
                limit: int | None = None) -> SweepReport:
    """Release ``scheduled`` rows now: those due (or, with ``force``, the given ones)."""
    p = _new_pass(ctx, limit)
    _release(p, ids=ids, force=force)
    return p.report


def _release(p: _Pass, *, ids: Sequence[int] | None = None, force: bool = False) -> None:
    where = and_(Submission.status == Status.SCHEDULED.value, Submission.region.is_not(None))
    if not force:
        where = and_(where, Submission.not_before <= p.now)
    if ids is not None:
        where = and_(where, Submission.id.in_(list(ids)))
    with p.ctx.db.transaction() as session:
        claimed = _claim(
            session, where, {"dispatch": Submission.dispatch + 1}, from_status=Status.SCHEDULED.value,
            to_status=Status.QUEUED.value, reason="released by sweep", now=p.now, limit=p.n,
            order=Submission.not_before,
        )
    _send_all(p, claimed, p.report.released, back_to=Status.SCHEDULED)


def _place_waiting(p: _Pass) -> None:
    """Rows held for want of any live worker go back to ``schedule`` once one is live."""
    if not p.any_live:
        return
    where = and_(Submission.status == Status.SCHEDULED.value, Submission.region.is_(None))
    with p.ctx.db.transaction() as session:
        claimed = _claim(
            session, where, {}, from_status=Status.SCHEDULED.value, to_status=Status.RECEIVED.value,
            reason="a worker is live: placing", now=p.now, limit=p.n, order=Submission.updated_at,
        )
    _schedule_all(p, [i for i, _, _ in claimed], p.report.placed)


def _reschedule(p: _Pass) -> None:
    """``received`` rows whose ``schedule`` got lost or failed: re-send with backoff,
    without a status event each time; after ``SCHEDULE_MAX_TRIES`` they become ``error``."""
    grace = p.ctx.settings.received_grace_s
    with p.ctx.db.session() as session:
        rows = session.execute(
            select(Submission.id, Submission.updated_at, Submission.schedule_tries)
            .where(Submission.status == Status.RECEIVED.value,
                   Submission.updated_at <= p.now - timedelta(seconds=grace))
            .order_by(Submission.updated_at).limit(p.n * 4)
        ).all()
    due = [(sid, at, tries) for sid, at, tries in rows
           if as_utc(at) + timedelta(seconds=min(grace * 2 ** tries, SCHEDULE_BACKOFF_CAP_S)) <= p.now][: p.n]
    spent = [sid for sid, _, tries in due if tries >= SCHEDULE_MAX_TRIES]
    retry = [(sid, at) for sid, at, tries in due if tries < SCHEDULE_MAX_TRIES]
    with p.ctx.db.transaction() as session:
        for sid in spent:
            sub = session.get(Submission, sid, with_for_update=True)
            if sub is not None and sub.status == Status.RECEIVED.value:
                sub.move_to(Status.ERROR, f"could not be scheduled after {sub.schedule_tries} tries: "
                                          f"{sub.status_reason or 'no reason recorded'}"[:2000], now=p.now)
                p.report.errored.append(sid)
        sent = []
        for sid, at in retry:  # touching updated_at is the claim: it stops matching for a while
            result = session.execute(
                update(Submission).where(Submission.id == sid, Submission.status == Status.RECEIVED.value,
                                         Submission.updated_at == at)
                .values(updated_at=p.now, schedule_tries=Submission.schedule_tries + 1)
            )
            if getattr(result, "rowcount", 0):
                sent.append(sid)
    _schedule_all(p, sent, p.report.rescheduled)


def _recover_lost(p: _Pass, inventory: Inventory) -> None:
    """Re-send ``queued`` rows whose message neither waits in its queue nor is held by a
    worker. The broker is read before and after the rows, so a message in flight between
    a queue and a worker's unacked set is seen in one of the two reads."""
    grace = timedelta(seconds=p.ctx.settings.received_grace_s)
    queues = {r.name: r.queue_name for r in p.ctx.regions}
    taken = p.ctx.settings.received_grace_s
    before = inventory.held(queues.values(), taken)
    if before is None:
        return
    with p.ctx.db.session() as session:
        rows = session.execute(
            select(Submission.id, Submission.dispatch)
            .where(Submission.status == Status.QUEUED.value, Submission.updated_at <= p.now - grace,
                   Submission.region.in_(list(queues)))
        ).all()
    if not rows:
        return
    after = inventory.held(queues.values(), taken)
    if after is None:
        return
    held = before | after
    held_ids = {sid for sid, dispatch in held if dispatch is None}  # messages without a number
    lost = [(int(sid), int(d)) for sid, d in rows if (sid, d) not in held and sid not in held_ids]
    claimed: Claimed = []
    with p.ctx.db.transaction() as session:
        for sid, dispatch in lost[: p.n]:
            claimed += _claim(
                session, and_(Submission.id == sid, Submission.status == Status.QUEUED.value,
                              Submission.dispatch == dispatch),
                {"dispatch": Submission.dispatch + 1}, from_status=Status.QUEUED.value,
                to_status=Status.QUEUED.value, reason="its message was lost from the broker: re-sent",
                now=p.now, limit=1, order=Submission.id,
            )
    _send_all(p, claimed, p.report.lost, back_to=Status.SCHEDULED)


def _recover_running(p: _Pass) -> None:
    s = p.ctx.settings
    with p.ctx.db.session() as session:
        rows = session.execute(
            select(Submission.id, Submission.updated_at, Submission.worker, Submission.attempts,
                   Assignment.limits, Assignment.build_status)
            .join(Assignment, Assignment.id == Submission.assignment_id)
            .where(Submission.status == Status.RUNNING.value)
        ).all()
        workers = worker_states(session, [r.worker for r in rows if r.worker])
    base = Limits.from_settings(s)
    gone: list[tuple[int, datetime, int, str]] = []
    for sid, at, worker, attempts, limits, build in rows:
        claimed_at = as_utc(at)
        own = base.with_overrides(limits or {}).timeout_s + s.stuck_margin_s
        if build not in ("ready", "broken"):  # the grade may first have to build the image
            own += s.image_build_timeout_s
        # A claimant missing from the registry (a name it does not register under) is
        # judged by the job's own limit alone.
        state = workers.get(worker) if worker else None
        why = None
        if state is not None and state.registered_at > claimed_at:
            why = f"its worker {worker} restarted since it took the job"
        elif state is not None and not worker_is_live(state.last_heartbeat, p.now, s):
            why = f"its worker {worker} stopped sending heartbeats"
        elif p.now - claimed_at > timedelta(seconds=own):
            why = f"running past its own limit ({own:.0f} s)"
        if why is not None:
            gone.append((int(sid), at, int(attempts), why))
    _requeue_running(p, gone[: p.n])


def _requeue_running(p: _Pass, gone: Sequence[tuple[int, datetime, int, str]]) -> None:
    claimed: Claimed = []
    running = Status.RUNNING.value
    with p.ctx.db.transaction() as session:
        for sid, at, attempts, why in gone:
            mine = and_(Submission.id == sid, Submission.status == running, Submission.updated_at == at)
            if attempts >= p.ctx.settings.max_attempts:
                p.report.errored += [i for i, _, _ in _claim(
                    session, mine, {"task_id": None}, from_status=running, to_status=Status.ERROR.value,
                    reason=f"gave up after {attempts} attempts: {why}", now=p.now, limit=1, order=Submission.id,
                )]
                continue
            claimed += _claim(
                session, mine, {"dispatch": Submission.dispatch + 1, "task_id": None, "worker": None},
                from_status=running, to_status=Status.QUEUED.value, reason=f"recovered: {why}",
                now=p.now, limit=1, order=Submission.id,
            )
    dead = set(p.dead) if p.any_live else set()
    # A job of a dead region is moved by the next step of this pass, not sent there.
    _send_all(p, [c for c in claimed if c[1] not in dead], p.report.requeued, back_to=None)
    p.report.requeued += [c[0] for c in claimed if c[1] in dead]


def _move_off_dead_regions(p: _Pass) -> None:
    dead = p.dead
    if not dead or not p.any_live:
        return
    moved: list[int] = []
    with p.ctx.db.transaction() as session:
        for status in (Status.QUEUED, Status.SCHEDULED):
            for region in dead:
                seen = p.liveness[region].last_seen
                since = f"since {seen:%Y-%m-%d %H:%M:%S} UTC" if seen else "ever"
                moved += [i for i, _, _ in _claim(
                    session,
                    and_(Submission.status == status.value, Submission.region == region),
                    {"dispatch": Submission.dispatch + 1, "schedule_tries": 0},
                    from_status=status.value, to_status=Status.RECEIVED.value,
                    reason=f"{MOVED_OFF} {region}: no live worker {since}", now=p.now, limit=p.n,
                    order=Submission.updated_at,
                )]
    _schedule_all(p, moved, p.report.moved)


def _schedule_all(p: _Pass, ids: Sequence[int], into: list[int]) -> None:
    for sid in ids:
        try:
            send_schedule(p.ctx, sid)
            into.append(sid)
        except BrokerUnavailable as exc:  # the row stays `received`: the next pass re-sends
            log.warning("%s; will retry next pass", exc)
            p.report.send_failures.append(sid)


def _send_all(p: _Pass, claimed: Claimed, into: list[int], *, back_to: Status | None) -> None:
    for sid, region, dispatch in claimed:
        if _send(p, sid, region, dispatch, back_to=back_to):
            into.append(sid)


def _send(p: _Pass, sid: int, region: str | None, dispatch: int, *, back_to: Status | None) -> bool:
    try:
        if region is None:
            raise UnknownRegion(f"submission {sid} has no region")
        send_grade(p.ctx, sid, region, dispatch)
        return True
    except UnknownRegion as exc:
        # The registry changed under it: decide again.
        _move(p.ctx, sid, Status.QUEUED, Status.RECEIVED, f"{exc}; rescheduling")
        p.report.send_failures.append(sid)
    except BrokerUnavailable as exc:
        log.warning("%s; will retry next pass", exc)
        if back_to is not None:
            _move(p.ctx, sid, Status.QUEUED, back_to, f"enqueue failed: {exc}")
        p.report.send_failures.append(sid)
    return False


def _move(ctx: Context, sid: int, current: Status, target: Status, reason: str) -> None:
    with ctx.db.transaction() as session:
        sub = session.get(Submission, sid, with_for_update=True)
        if sub is not None and sub.status == current.value:
            sub.move_to(target, reason[:500], now=ctx.now())
