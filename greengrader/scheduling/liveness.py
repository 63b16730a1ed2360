"""Which regions can grade right now: the live workers behind each region queue.

A worker is live while its heartbeat is younger than ``health_heartbeat_max_age_s``. A
region is a placement candidate only while it has a live worker; its capacity is the
concurrency those workers reported at start, capped by the regions file's ``capacity``
where the file sets one. A region whose newest heartbeat is older than the limit plus
``region_dead_after_s`` (or that never had a worker) is *dead*: the sweep places its
waiting jobs again elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from greengrader.models import Worker
from greengrader.regions.registry import Region, RegionRegistry
from greengrader.settings import Settings
from greengrader.times import as_utc


@dataclass(frozen=True)
class RegionLiveness:
    """Live workers of one region at one moment."""

    name: str
    workers: int = 0
    slots: int = 0
    last_seen: datetime | None = None  # newest heartbeat of any worker that ever served it

    @property
    def live(self) -> bool:
        return self.workers > 0


@dataclass(frozen=True)
class WorkerState:
    """What recovery needs to know about the worker that claimed a job."""

    last_heartbeat: datetime
    registered_at: datetime


def served_regions(worker: Worker) -> list[str]:
    return list(worker.regions or ([worker.region] if worker.region else []))


def worker_is_live(last_heartbeat: datetime, now: datetime, settings: Settings) -> bool:
    return as_utc(now) - as_utc(last_heartbeat) < timedelta(seconds=settings.health_heartbeat_max_age_s)


def region_liveness(
    session: Session, regions: RegionRegistry, now: datetime, settings: Settings
) -> dict[str, RegionLiveness]:
    """Liveness of every configured region (from the worker registry)."""
    acc: dict[str, RegionLiveness] = {r.name: RegionLiveness(r.name) for r in regions}
    for worker in session.scalars(select(Worker)):
        live = worker_is_live(worker.last_heartbeat, now, settings)
        for name in served_regions(worker):
            if name not in acc:
                continue
            cur = acc[name]
            seen = as_utc(worker.last_heartbeat)
            acc[name] = RegionLiveness(
                name,
                workers=cur.workers + int(live),
                slots=cur.slots + (max(worker.concurrency or 1, 1) if live else 0),
                last_seen=seen if cur.last_seen is None or seen > cur.last_seen else cur.last_seen,
            )
    return acc


def worker_states(session: Session, hostnames: Sequence[str]) -> dict[str, WorkerState]:
    if not hostnames:
        return {}
    rows = session.execute(
        select(Worker.hostname, Worker.last_heartbeat, Worker.registered_at)
        .where(Worker.hostname.in_(list(set(hostnames))))
    ).all()
    return {h: WorkerState(as_utc(hb), as_utc(reg)) for h, hb, reg in rows}


def live_view(regions: RegionRegistry, liveness: Mapping[str, RegionLiveness]) -> list[Region]:
    """The registry as placement should see it now: live workers and their slots."""
    out = []
    for region in regions:
        state = liveness.get(region.name, RegionLiveness(region.name))
        slots = state.slots if region.cap is None else min(state.slots, region.cap)
        out.append(replace(region, capacity=slots, live_workers=state.workers))
    return out


def dead_regions(
    liveness: Mapping[str, RegionLiveness], now: datetime, settings: Settings
) -> list[str]:
    """Regions with no live worker for the heartbeat limit plus ``region_dead_after_s``."""
    limit = timedelta(seconds=settings.health_heartbeat_max_age_s + settings.region_dead_after_s)
    return [
        name for name, state in liveness.items()
        if not state.live and (state.last_seen is None or as_utc(now) - state.last_seen >= limit)
    ]
