"""Read-only observations of a running GreenGrader, shared by ``health`` and the exporter.

Every function takes what it reads from (a session, a broker URL) and returns plain
values; judging them (thresholds, Nagios states) is :mod:`greengrader.ops.health`'s job and
rendering them is :mod:`greengrader.ops.exporter`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from greengrader.models import Decision, Quarantine, Result, Status, Submission, Worker

# kombu's Redis transport keeps one list per priority step; step 0 is the bare queue name.
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def status_counts(session: Session) -> dict[str, int]:
    """Submissions per status, every status present (zero when none)."""
    counts = {s.value: 0 for s in Status}
    rows = session.execute(select(Submission.status, func.count()).group_by(Submission.status))
    for status, count in rows:
        counts[str(status)] = int(count)
    return counts


def quarantine_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Quarantine.reason, func.count()).group_by(Quarantine.reason))
    return {str(reason): int(count) for reason, count in rows}


def last_message_at(session: Session) -> datetime | None:
    """When the bridge last stored anything (a submission or a quarantined payload)."""
    newest = [
        session.scalar(select(func.max(Submission.received_at))),
        session.scalar(select(func.max(Quarantine.received_at))),
    ]
    return _max_time(newest)


def oldest_unscheduled_at(session: Session) -> datetime | None:
    """Receipt time of the oldest submission still waiting for a scheduling decision."""
    return _as_utc(
        session.scalar(
            select(func.min(Submission.received_at)).where(Submission.status == Status.RECEIVED.value)
        )
    )


def workers_alive(
    session: Session, regions: Iterable[str], now: datetime, max_age_s: float
) -> dict[str, int]:
    """Workers per region whose heartbeat is younger than ``max_age_s`` (every region listed;
    a worker consuming several region queues counts in each)."""
    from greengrader.scheduling.liveness import served_regions

    alive = {name: 0 for name in regions}
    cutoff = now - timedelta(seconds=max_age_s)
    for worker in session.scalars(select(Worker).where(Worker.last_heartbeat >= cutoff)):
        for name in served_regions(worker):
            alive[name] = alive.get(name, 0) + 1
    return alive


def waiting_for_worker(session: Session) -> int:
    """Jobs held ``scheduled`` without a region because no region had a live worker."""
    return int(session.scalar(
        select(func.count()).select_from(Submission)
        .where(Submission.status == Status.SCHEDULED.value, Submission.region.is_(None))
    ) or 0)


@dataclass
class CarbonTotals:
    """gCO2 emitted by grading and saved versus placing every job in the baseline region."""

    emitted_g: dict[str, float] = field(default_factory=dict)
    saved_g: float = 0.0
    baseline_g: float = 0.0
    expected_saved_g: float = 0.0
    graded_jobs: int = 0


def carbon_totals(session: Session, baseline_region: str) -> CarbonTotals:
    """Measured emissions from Result rows, and savings against the static baseline.

    A job's baseline emissions are its measured emissions rescaled by the ratio of the
    baseline region's intensity (from its decision's candidates) to the intensity it
    actually ran under: same energy, other grid. Jobs whose decision lacks the baseline
    region count as saving nothing. ``expected_saved_g`` is the same comparison on the
    scheduler's expectations at decision time, for jobs not yet graded too.
    """
    totals = CarbonTotals()
    for region, grams in session.execute(
        select(Result.region, func.sum(Result.carbon_g))
        .where(Result.carbon_g.is_not(None))
        .group_by(Result.region)
    ):
        totals.emitted_g[str(region or "unknown")] = float(grams or 0.0)

    latest = (
        select(func.max(Decision.id).label("id")).group_by(Decision.submission_id).subquery()
    )
    decisions = session.execute(
        select(Decision.submission_id, Decision.candidates, Decision.expected_g).join(
            latest, Decision.id == latest.c.id
        )
    ).all()
    by_submission: dict[int, dict[str, Any]] = {}
    for submission_id, candidates, expected_g in decisions:
        base = _candidate(candidates, baseline_region)
        by_submission[int(submission_id)] = base
        base_expected = _number(base.get("expected_g"))
        if base_expected is not None and expected_g is not None:
            totals.expected_saved_g += base_expected - float(expected_g)

    for submission_id, carbon_g, intensity in session.execute(
        select(Result.submission_id, Result.carbon_g, Result.intensity).where(
            Result.carbon_g.is_not(None)
        )
    ):
        if carbon_g is None:
            continue
        totals.graded_jobs += 1
        base_intensity = _number(by_submission.get(int(submission_id), {}).get("intensity"))
        emitted = float(carbon_g)
        baseline = emitted
        if base_intensity is not None and intensity:
            baseline = emitted * base_intensity / float(intensity)
        totals.baseline_g += baseline
        totals.saved_g += baseline - emitted
    return totals


def queue_depths(broker_url: str, queues: Iterable[str], timeout_s: float) -> dict[str, int] | None:
    """Messages waiting per Celery queue (Redis brokers only; None for other transports).

    Raises :class:`redis.RedisError` when the broker cannot be read.
    """
    if not broker_url.startswith(("redis:", "rediss:")):
        return None
    import redis

    client = redis.Redis.from_url(
        broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        pipe = client.pipeline(transaction=False)
        names = list(queues)
        for name in names:
            for step in _KOMBU_PRIORITY_STEPS:
                pipe.llen(name if step == 0 else f"{name}{_KOMBU_PRIORITY_SEP}{step}")
        lengths = pipe.execute()
    finally:
        client.close()
    per = len(_KOMBU_PRIORITY_STEPS)
    return {name: int(sum(lengths[i * per : (i + 1) * per])) for i, name in enumerate(names)}


def _candidate(candidates: Any, region: str) -> dict[str, Any]:
    if isinstance(candidates, dict):
        entry = candidates.get(region)
        if isinstance(entry, dict):
            return entry
    return {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _as_utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _max_time(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in (_as_utc(x) for x in values) if v is not None]
    return max(present) if present else None
