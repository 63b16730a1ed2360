"""The overview: submissions by status, regions now, carbon emitted and saved, alerts.

Everything is aggregated in the database (one GROUP BY per figure), so the page costs
the same with ten submissions or a hundred thousand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

from sqlalchemy import Float, case, cast, exists, func, literal, select
from sqlalchemy.orm import Session, aliased

from greengrader.carbon.base import CarbonProvider
from greengrader.context import Context
from greengrader.errors import GreengraderError
from greengrader.models import Decision, Result, Status, Submission
from greengrader.ops import health, observe
from greengrader.regions.registry import Region
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
    ctx: Context, session: Session, scope: Scope, provider: CarbonProvider, queue_depths: QueueDepths,
    past: PastDays | None = None,
) -> Overview:
    now = ctx.now()
    regions = regions_now(ctx, session, provider, queue_depths)
    return Overview(
        generated_at=now,
        counts=status_counts(session, scope, now),
        regions=regions,
        carbon=carbon_summary(session, scope, ctx.settings.baseline_region or ctx.settings.default_region, now, past),
        disagreements=disagreements(session, scope),
        alerts=alerts(ctx, session, regions),
    )


def status_counts(session: Session, scope: Scope, now: datetime) -> StatusCounts:
    """Submissions received today (UTC) and in the last 7 days, by status: one index-only scan."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = {s.value: 0 for s in Status}
    week = dict(today)
    stmt = scope.apply(
        select(Submission.status, func.count(), func.sum(case((Submission.received_at >= midnight, 1), else_=0)))
        .where(Submission.received_at >= min(midnight, now - timedelta(days=7)))
        .group_by(Submission.status)
    )
    for status, n, n_today in session.execute(stmt):
        week[str(status)], today[str(status)] = int(n), int(n_today or 0)
    return StatusCounts(today=today, week=week)


def disagreements(session: Session, scope: Scope) -> int:
    stmt = scope.apply(
        select(func.count()).select_from(Result).join(Submission, Result.submission_id == Submission.id)
        .where(Result.agrees.is_(False))
    )
    return int(session.scalar(stmt) or 0)


DayKey = tuple[tuple[int, ...] | None, str, date, bool]


class PastDays:
    """Per-day carbon totals, shared by every open overview of the same scope.

    Summing two weeks of results with their decisions is the overview's one costly query.
    Finished days rarely change (a regrade may move a job) and are reused for ``ttl_s``;
    today's totals for ``today_ttl_s``, so pages polling every second cost one query per
    few seconds. Keyed by scope, baseline region, date and whether it is today, so it never
    grows past a few entries per group of users.
    """

    def __init__(
        self, ttl_s: float = 300.0, today_ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s, self.today_ttl_s, self.clock = ttl_s, today_ttl_s, clock
        self._lock = threading.Lock()
        self._entries: dict[DayKey, tuple[float, list[CarbonDay]]] = {}

    def _fresh(self, key: DayKey, at: float, now: float) -> bool:
        return now - at < (self.today_ttl_s if key[3] else self.ttl_s)

    def get(self, key: DayKey, compute: Callable[[], list[CarbonDay]]) -> list[CarbonDay]:
        now = self.clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and self._fresh(key, hit[0], now):
                return hit[1]
        value = compute()
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if self._fresh(k, v[0], now)}
            self._entries[key] = (now, value)
        return value


def _carbon_days(session: Session, scope: Scope, baseline_region: str, start: datetime, end: datetime | None) -> list[CarbonDay]:
    """gCO2 per day of results finished in ``[start, end)`` and the baseline's equivalent.

    As in :func:`greengrader.ops.observe.carbon_totals`: same energy, the baseline region's
    intensity from the job's latest decision; a job without it saves nothing.
    """
    newer = aliased(Decision)
    superseded = exists().where(newer.submission_id == Decision.submission_id, newer.id > Decision.id)
    base_intensity = cast(Decision.candidates[baseline_region]["intensity"].as_float(), Float)
    # op("/"): plain float division (SQLAlchemy's `/` casts the divisor to NUMERIC on Postgres).
    baseline = func.coalesce(
        (Result.carbon_g * base_intensity).op("/")(func.nullif(Result.intensity, literal(0.0, Float))),
        Result.carbon_g,
    )
    day = func.date(Result.finished_at)
    window = [Result.finished_at >= start] + ([Result.finished_at < end] if end is not None else [])
    stmt = scope.apply(
        select(day, func.sum(Result.carbon_g), func.sum(baseline), func.count())
        .select_from(Result)
        .join(Submission, Result.submission_id == Submission.id)
        .outerjoin(Decision, Decision.submission_id == Result.submission_id)
        .where(Result.carbon_g.is_not(None), *window,
               Decision.id.is_(None) | ~superseded)
        .group_by(day)
        .order_by(day)
    )
    return [
        CarbonDay(day=str(d), emitted_g=float(e or 0.0), baseline_g=float(b or 0.0), jobs=int(n))
        for d, e, b, n in session.execute(stmt)
    ]


def carbon_summary(
    session: Session, scope: Scope, baseline_region: str, now: datetime, past: PastDays | None = None
) -> CarbonSummary:
    """gCO2 emitted per day over the last two weeks, and what the baseline region would have emitted."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(days=CARBON_DAYS - 1)

    def earlier() -> list[CarbonDay]:
        return _carbon_days(session, scope, baseline_region, start, midnight)

    def today() -> list[CarbonDay]:
        return _carbon_days(session, scope, baseline_region, midnight, None)

    if past is None:
        days = earlier() + today()
    else:
        key = (scope.assignment_ids, baseline_region, midnight.date())
        days = past.get((*key, False), earlier) + past.get((*key, True), today)
    emitted = sum(d.emitted_g for d in days)
    base = sum(d.baseline_g for d in days)
    return CarbonSummary(
        baseline_region=baseline_region, emitted_g=emitted, baseline_g=base, saved_g=base - emitted,
        graded_jobs=sum(d.jobs for d in days), days=days,
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
