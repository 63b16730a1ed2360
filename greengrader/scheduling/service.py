"""The ``schedule`` decision for one submission, and handing ``grade`` to a region queue.

Order of operations (the row is the outbox): decide outside any transaction (CAS may be
slow), then in one short transaction re-check the status, write the Decision and move the
submission to ``scheduled`` (region, not_before) — and straight on to ``queued`` when it is
due. Only after the commit is ``grade`` sent, with no ETA. If sending fails the row goes
back to ``scheduled`` and the sweep sends it on its next pass; a delayed start stays in the
database until the sweep releases it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from greengrader.carbon import get_provider
from greengrader.context import Context
from greengrader.errors import BrokerUnavailable, GreengraderError, NotFound, SchedulingError
from greengrader.models import Decision, Status, Submission
from greengrader.ops.metrics import count_decision
from greengrader.scheduling.liveness import RegionLiveness, live_view, region_liveness
from greengrader.scheduling.placement import Placer, runtime_estimate
from greengrader.scheduling.policies import get_policy
from greengrader.scheduling.types import Placement, PlacementRequest, RegionLoad
from greengrader.tasks.names import GRADE_TASK, SCHEDULE_TASK

if TYPE_CHECKING:
    from greengrader.scheduling.cas_client import CasClient

log = logging.getLogger(__name__)
MOVED_OFF = "moved off"  # status reason of a job taken off a dead region, then its region



def build_placer(ctx: Context) -> Placer:
    """The in-process placer configured by the context's settings (one per context: it
    owns the forecast cache, and the context owns it)."""
    return ctx.memo("placer", lambda: _new_placer(ctx))


def _new_placer(ctx: Context) -> Placer:
    s = ctx.settings
    return Placer(
        get_policy(s.policy, seed=s.policy_seed, static_region=s.default_region),
        get_provider(s.carbon_source, s),
        list(ctx.regions),
        watts_per_core=s.schedule_watts_per_core,
        pue=s.pue,
        capacity_aware=s.capacity_aware,
        queue_aware=s.queue_aware,
        queue_wait_penalty=s.queue_wait_penalty,
        forecast_margin=s.forecast_margin,
    )


def region_loads(session: Session) -> dict[str, RegionLoad]:
    """Queued and running submissions per region."""
    rows = session.execute(
        select(Submission.region, Submission.status, func.count())
        .where(Submission.status.in_([Status.QUEUED.value, Status.RUNNING.value]))
        .group_by(Submission.region, Submission.status)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for region, status, n in rows:
        if region is not None:
            counts.setdefault(region, {})[status] = int(n)
    return {
        r: RegionLoad(queued=c.get(Status.QUEUED.value, 0), running=c.get(Status.RUNNING.value, 0))
        for r, c in counts.items()
    }


@dataclass(frozen=True)
class _Job:
    request: PlacementRequest
    loads: Mapping[str, RegionLoad]
    liveness: Mapping[str, RegionLiveness]

    @property
    def any_live(self) -> bool:
        return any(state.live for state in self.liveness.values())


def _job(ctx: Context, submission_id: int) -> _Job | None:
    with ctx.db.session() as session:
        sub = session.get(Submission, submission_id)
        if sub is None:
            raise NotFound(f"submission {submission_id} does not exist")
        if sub.status != Status.RECEIVED.value:
            return None
        runtime = runtime_estimate(session, sub.assignment_id, ctx.settings.default_runtime_s)
        request = PlacementRequest(
            earliest=ctx.now(), runtime_s=runtime, max_delay_s=float(ctx.settings.max_delay_s),
            job=submission_id, cores=ctx.settings.grade_cpus, regions=_not_avoided(ctx, sub.avoid_regions),
        )
        liveness = region_liveness(session, ctx.regions, ctx.now(), ctx.settings)
        return _Job(request, region_loads(session), liveness)


def _not_avoided(ctx: Context, avoid: list[str] | None) -> list[str] | None:
    """Candidate regions without those that could not start this job (all, once every
    region has failed it: infrastructure may have recovered meanwhile)."""
    if not avoid:
        return None
    rest = [r.name for r in ctx.regions.enabled() if r.name not in avoid]
    return rest or None


def decide(ctx: Context, job: _Job, cas: CasClient | None = None) -> Placement:
    """Ask CAS when configured; on any CAS failure use the in-process policy and say so."""
    placer = build_placer(ctx)
    placer.set_regions(live_view(ctx.regions, job.liveness))
    if cas is None and ctx.settings.cas_url:
        from greengrader.scheduling.cas_client import CasClient

        cas = CasClient.from_settings(ctx.settings)
    if cas is not None:
        try:
            live = [r.name for r in placer.candidate_regions(job.request.regions) if r.live_workers]
            return cas.place(job.request, live)
        except GreengraderError as exc:
            log.warning("CAS failed (%s); deciding in process", exc)
            placement = placer.place(job.request, ctx.now(), job.loads)
            return _with_fallback(placement, f"CAS at {cas.url} failed: {exc}; decided in process")
    return placer.place(job.request, ctx.now(), job.loads)


def _with_fallback(p: Placement, why: str) -> Placement:
    return Placement(
        policy=p.policy, region=p.region, start=p.start, expected_g=p.expected_g,
        intensity=p.intensity, runtime_s=p.runtime_s, energy_kwh=p.energy_kwh, fallback=why,
        reason_text=p.reason, candidate_detail=p.candidates,
    )


def schedule_submission(ctx: Context, submission_id: int, *, cas: CasClient | None = None) -> Decision | None:
    """Decide region and start for a ``received`` submission; enqueue ``grade`` if due.

    Returns the Decision, or None when the submission was not ``received`` (a duplicate
    delivery of the task, or already scheduled by someone else).
    """
    build_placer(ctx)  # a configuration error (policy, carbon source) surfaces at once
    job = _job(ctx, submission_id)
    if job is None:
        log.info("submission %s is not awaiting scheduling; nothing to do", submission_id)
        return None
    if not job.any_live:
        _wait_for_worker(ctx, submission_id)
        return None
    placement = decide(ctx, job, cas)
    if placement.region not in ctx.regions:
        raise SchedulingError(f"placement chose unknown region {placement.region!r}")
    now = ctx.now()
    with ctx.db.transaction() as session:
        sub = session.get(Submission, submission_id, with_for_update=True)
        if sub is None or sub.status != Status.RECEIVED.value:
            return None
        # A job taken off a dead region says so in its new decision.
        moved = sub.status_reason if (sub.status_reason or "").startswith(MOVED_OFF) else None
        decision = Decision(
            submission_id=sub.id, policy=placement.policy, candidates=placement.candidates_json(),
            region=placement.region, start_at=placement.start, expected_g=placement.expected_g,
            runtime_estimate_s=placement.runtime_s,
            reason=f"{moved}; {placement.reason}" if moved else placement.reason, fallback=placement.fallback,
            created_at=now,
        )
        session.add(decision)
        sub.region, sub.not_before = placement.region, placement.start
        sub.move_to(Status.SCHEDULED, placement.reason[:500], now=now)
        due = placement.start <= now
        if due:
            sub.move_to(Status.QUEUED, f"released to {placement.region}", now=now)
            sub.dispatch += 1
        dispatch = sub.dispatch
    count_decision(placement.policy, placement.fallback, placement.saved_vs(ctx.settings.default_region))
    if due:
        enqueue_grade(ctx, submission_id, placement.region, dispatch)
    return decision


def note_unschedulable(ctx: Context, submission_id: int, why: str) -> None:
    """Record why a ``received`` row could not be placed (no status change, no event)."""
    with ctx.db.transaction() as session:
        session.execute(
            update(Submission).where(Submission.id == submission_id, Submission.status == Status.RECEIVED.value)
            .values(status_reason=f"cannot schedule: {why}"[:2000])
        )


WAITING_FOR_WORKER = "waiting for a live worker: no region has one"


def _wait_for_worker(ctx: Context, submission_id: int) -> None:
    """No region can grade: hold the job ``scheduled`` without a region; the sweep hands it
    back to ``schedule`` as soon as a worker is live somewhere."""
    with ctx.db.transaction() as session:
        sub = session.get(Submission, submission_id, with_for_update=True)
        if sub is not None and sub.status == Status.RECEIVED.value:
            sub.region, sub.not_before = None, None
            sub.move_to(Status.SCHEDULED, WAITING_FOR_WORKER, now=ctx.now())
    log.warning("submission %s: %s", submission_id, WAITING_FOR_WORKER)


def send_grade(ctx: Context, submission_id: int, region: str, dispatch: int | None = None) -> None:
    """Send ``grade`` to the region's queue (no ETA); broker failures become our error.

    ``dispatch`` is the row's fencing token for this message (see ``Submission.dispatch``).
    """
    queue = ctx.regions.get(region).queue_name
    kwargs = {} if dispatch is None else {"dispatch": dispatch}
    try:
        ctx.celery.send_task(GRADE_TASK, args=[submission_id], kwargs=kwargs, queue=queue)
    except Exception as exc:  # kombu/redis raise many unrelated types when the broker is down
        raise BrokerUnavailable(f"cannot enqueue grade for submission {submission_id} on {queue}: {exc}") from exc


def enqueue_grade(ctx: Context, submission_id: int, region: str, dispatch: int | None = None) -> bool:
    """Send ``grade`` for a committed ``queued`` row; on failure put the row back to
    ``scheduled`` (due now) so the next sweep sends it. Returns True when sent."""
    try:
        send_grade(ctx, submission_id, region, dispatch)
        return True
    except BrokerUnavailable as exc:
        log.warning("%s; leaving it for the sweep", exc)
        with ctx.db.transaction() as session:
            sub = session.get(Submission, submission_id, with_for_update=True)
            if sub is not None and sub.status == Status.QUEUED.value:
                sub.move_to(Status.SCHEDULED, f"enqueue failed: {exc}"[:500], now=ctx.now())
        return False


def send_schedule(ctx: Context, submission_id: int) -> None:
    try:
        ctx.celery.send_task(SCHEDULE_TASK, args=[submission_id])
    except Exception as exc:  # see send_grade
        raise BrokerUnavailable(f"cannot enqueue schedule for submission {submission_id}: {exc}") from exc
