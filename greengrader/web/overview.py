"""The overview: submissions by status, regions now, carbon emitted and saved, alerts.

Everything is aggregated in the database (one GROUP BY per figure), so the page costs
the same with ten submissions or a hundred thousand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from greengrader import health, observe
from greengrader.carbon.base import CarbonProvider
from greengrader.carbon.regions import Region
from greengrader.context import Context
from greengrader.errors import GreengraderError
from greengrader.models import Decision, Result, Status, Submission
from greengrader.web.schemas import (
    Alert,
    CarbonDay,
    CarbonSummary,
    Overview,
    RegionNow,
    StatusCounts,
)
from greengrader.web.scope import Scope

log = logging.getLogger(__name__)

CARBON_DAYS = 14
QueueDepths = Callable[[Iterable[str]], "dict[str, int] | None"]


def overview(
    ctx: Context, session: Session, scope: Scope, provider: CarbonProvider, queue_depths: QueueDepths
) -> Overview:
    now = ctx.now()
    regions = regions_now(ctx, session, provider, queue_depths)
    return Overview(
        generated_at=now,
        counts=StatusCounts(
            today=status_counts(session, scope, now.replace(hour=0, minute=0, second=0, microsecond=0)),
            week=status_counts(session, scope, now - timedelta(days=7)),
        ),
        regions=regions,
        carbon=carbon_summary(session, scope, ctx.settings.baseline_region or ctx.settings.default_region, now),
        disagreements=disagreements(session, scope),
        alerts=alerts(ctx, session, regions),
    )


def status_counts(session: Session, scope: Scope, since: datetime) -> dict[str, int]:
    counts = {s.value: 0 for s in Status}
    stmt = scope.apply(
        select(Submission.status, func.count()).where(Submission.received_at >= since).group_by(Submission.status)
    )
    for status, n in session.execute(stmt):
        counts[str(status)] = int(n)
    return counts


def disagreements(session: Session, scope: Scope) -> int:
    stmt = scope.apply(
        select(func.count()).select_from(Result).join(Submission, Result.submission_id == Submission.id)
        .where(Result.agrees.is_(False))
    )
    return int(session.scalar(stmt) or 0)


def carbon_summary(session: Session, scope: Scope, baseline_region: str, now: datetime) -> CarbonSummary:
    """gCO2 per day over the last two weeks, and what the baseline region would have emitted.

    As in :func:`greengrader.observe.carbon_totals`: same energy, the baseline region's
    intensity from the job's latest decision; a job without it saves nothing.
    """
    latest = select(func.max(Decision.id).label("id")).group_by(Decision.submission_id).subquery()
    base_intensity = cast(Decision.candidates[baseline_region]["intensity"].as_float(), Float)
    baseline = func.coalesce(
        Result.carbon_g * base_intensity / func.nullif(Result.intensity, 0.0), Result.carbon_g
    )
    day = func.date(Result.finished_at)
    stmt = scope.apply(
        select(day, func.sum(Result.carbon_g), func.sum(baseline), func.count())
        .select_from(Result)
        .join(Submission, Result.submission_id == Submission.id)
        .outerjoin(Decision, Decision.submission_id == Result.submission_id)
        .where(
            Result.carbon_g.is_not(None),
            Result.finished_at >= now - timedelta(days=CARBON_DAYS),
            (Decision.id.is_(None)) | Decision.id.in_(select(latest.c.id)),
        )
        .group_by(day)
        .order_by(day)
    )
    rows = session.execute(stmt).all()
    days = [CarbonDay(day=str(d), emitted_g=float(e or 0.0), baseline_g=float(b or 0.0)) for d, e, b, _ in rows]
    emitted = sum(d.emitted_g for d in days)
    base = sum(d.baseline_g for d in days)
    jobs = sum(int(n) for *_, n in rows)
    return CarbonSummary(
        baseline_region=baseline_region, emitted_g=emitted, baseline_g=base, saved_g=base - emitted,
        graded_jobs=jobs, days=days,
    )


def current_intensity(provider: CarbonProvider, region: Region, now: datetime) -> tuple[float | None, str | None]:
    try:
        return float(provider.forecast(region.zone, now, 3600).values[0]), None
    except GreengraderError as exc:
        return None, str(exc)[:200]


def regions_now(
    ctx: Context, session: Session, provider: CarbonProvider, queue_depths: QueueDepths
) -> list[RegionNow]:
    regions = list(ctx.regions)
    now = ctx.now()
    alive = observe.workers_alive(session, [r.name for r in regions], now, ctx.settings.health_heartbeat_max_age_s)
    try:
        depths = queue_depths([r.queue_name for r in regions])
    except Exception as exc:  # the broker's client raises its own family; the page still renders
        log.warning("queue depths unavailable: %s", type(exc).__name__)
        depths = None
    out = []
    for r in regions:
        intensity, error = current_intensity(provider, r, now)
        out.append(RegionNow(
            name=r.name, zone=r.zone, enabled=r.enabled, capacity=r.capacity,
            queue_depth=None if depths is None else depths.get(r.queue_name, 0),
            live_workers=alive.get(r.name, 0), intensity=intensity, intensity_error=error,
        ))
    return out


def alerts(ctx: Context, session: Session, regions: list[RegionNow]) -> list[Alert]:
    """The database checks of ``greengrader health`` that are not OK, and regions whose
    carbon data could not be read (stale or missing)."""
    now = ctx.now()
    checks = [
        health.check_workers(session, ctx.settings, ctx.regions, now),
        health.check_backlog(session, ctx.settings),
        health.check_unscheduled(session, ctx.settings, now),
    ]
    out = [Alert(check=c.name, state=c.state.name, summary=c.summary) for c in checks if c.state is not health.State.OK]
    out.extend(
        Alert(check="carbon", state="WARNING", summary=f"{r.name}: no current carbon data ({r.intensity_error})")
        for r in regions if r.enabled and r.intensity_error
    )
    return out
