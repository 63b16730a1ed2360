"""Figures and tables from real runs stored in the database (submissions and results)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

if TYPE_CHECKING:
    from greengrader.db import Database

PERCENTILES = (50, 90, 95, 99)
AGREEMENT_KEYS = ("agrees", "differs", "nondeterministic", "unknown")


@dataclass
class DatabaseStats:
    submissions: int = 0
    per_date: dict[str, int] = field(default_factory=dict)
    per_hour: list[int] = field(default_factory=lambda: [0] * 24)
    agreement: dict[str, int] = field(default_factory=dict)
    runtime_s: dict[str, float] = field(default_factory=dict)
    overhead_s: dict[str, float] = field(default_factory=dict)
    # (assignment, region, jobs, energy kWh, gCO2)
    by_assignment_region: list[tuple[str, str, int, float, float]] = field(default_factory=list)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES} | {"mean": float(arr.mean()), "n": float(arr.size)}


def collect(db: Database, tz: str = "UTC", start: datetime | None = None, end: datetime | None = None) -> DatabaseStats:
    """Everything the report shows about real runs in ``[start, end)``."""
    from sqlalchemy import select

    from greengrader.models import Assignment, Result, Submission

    zone = ZoneInfo(tz)
    stats = DatabaseStats()
    sub = select(Submission.received_at)
    res = (
        select(Result.agreement, Result.runtime_s, Result.turnaround_s, Result.energy_kwh, Result.carbon_g,
               Result.region, Assignment.title)
        .join(Submission, Result.submission_id == Submission.id)
        .join(Assignment, Submission.assignment_id == Assignment.id)
    )
    if start is not None:
        sub, res = sub.where(Submission.received_at >= start), res.where(Submission.received_at >= start)
    if end is not None:
        sub, res = sub.where(Submission.received_at < end), res.where(Submission.received_at < end)
    with db.session() as session:
        received = [r[0] for r in session.execute(sub)]
        results = session.execute(res).all()
    local = [t.astimezone(zone) for t in received]
    stats.submissions = len(local)
    stats.per_date = dict(sorted(Counter(t.date().isoformat() for t in local).items()))
    stats.per_hour = [int(x) for x in np.bincount([t.hour for t in local], minlength=24)]
    # The per-test classification (greengrader/agreement), as `results --disagreements` shows it.
    counts = Counter(r.agreement or "unknown" for r in results)
    stats.agreement = {key: counts.get(key, 0) for key in AGREEMENT_KEYS}
    stats.runtime_s = _percentiles([r.runtime_s for r in results if r.runtime_s is not None])
    stats.overhead_s = _percentiles([
        r.turnaround_s - r.runtime_s for r in results
        if r.turnaround_s is not None and r.runtime_s is not None
    ])
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in results:
        groups.setdefault((r.title or "?", r.region or "?"), []).append(r)
    stats.by_assignment_region = [
        (a, reg, len(rows), sum(x.energy_kwh or 0.0 for x in rows), sum(x.carbon_g or 0.0 for x in rows))
        for (a, reg), rows in sorted(groups.items())
    ]
    return stats


def utc_offset_hours(tz: str, at: datetime | None = None) -> int:
    """Whole-hour offset of ``tz`` from UTC at ``at`` (for shifting hour-of-day profiles)."""
    off = (at or datetime.now(UTC)).astimezone(ZoneInfo(tz)).utcoffset()
    return int(off.total_seconds() // 3600) if off is not None else 0
