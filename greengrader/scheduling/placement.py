"""Online placement: build the cost cube from the carbon forecast, the region registry and
the regions' load, then let a policy kernel choose (one job, or a batch in one call).

Costs are expected gCO2 = energy (runtime x cores x W per core x PUE,
:func:`~greengrader.carbon.energy.run_kwh`) x mean forecast intensity over the run
(:class:`~greengrader.scheduling.stack.ForecastStack`). A region whose queue is backed up
runs the job later: its cost is evaluated at the start plus the expected queue wait, plus
``queue_wait_penalty`` (gCO2/kWh per hour of wait, times the job's energy), so a region only
wins if its carbon gain outweighs the wait (queue awareness). With capacity awareness a
region without a free worker slot or an untainted node is skipped and the next best taken.
The request and answer types are in :mod:`greengrader.scheduling.types`, the reason text in
:mod:`greengrader.scheduling.explain`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from statistics import median

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from greengrader.carbon import integral
from greengrader.carbon.base import CarbonProvider, IntensitySeries
from greengrader.carbon.energy import run_kwh
from greengrader.errors import CarbonDataError, SchedulingError
from greengrader.regions.registry import Region
from greengrader.scheduling.explain import Explain
from greengrader.scheduling.policies import FloatArray, Policy
from greengrader.scheduling.stack import ForecastStack
from greengrader.scheduling.types import IDLE, Placement, PlacementRequest, RegionLoad
from greengrader.times import as_utc

# How long a fetched forecast is reused across decisions (see _forecasts).
FORECAST_CACHE_S = 60.0


def runtime_estimate(session: Session, assignment_id: int, default_s: float, history: int = 200) -> float:
    """Median runtime of the assignment's last ``history`` results, else ``default_s``."""
    from greengrader.models import Result, Submission

    rows = session.scalars(
        select(Result.runtime_s)
        .join(Submission, Submission.id == Result.submission_id)
        .where(Submission.assignment_id == assignment_id, Result.runtime_s.is_not(None))
        .order_by(Result.id.desc())
        .limit(history)
    ).all()
    values = [float(v) for v in rows if v is not None and v > 0]
    return float(median(values)) if values else default_s


class Placer:
    """Places jobs with a policy over a carbon provider and a set of regions."""

    def __init__(
        self,
        policy: Policy,
        provider: CarbonProvider,
        regions: Sequence[Region],
        *,
        watts_per_core: float = 5.0,
        pue: float = 1.0,
        capacity_aware: bool = True,
        queue_aware: bool = True,
        queue_wait_penalty: float = 50.0,
        forecast_cache_s: float = FORECAST_CACHE_S,
        forecast_margin: float = 0.0,
    ) -> None:
        self.policy = policy
        self.forecast_margin = forecast_margin
        self.provider = provider
        self.regions = list(regions)
        self.watts_per_core = watts_per_core
        self.pue = pue
        self.capacity_aware = capacity_aware
        self.queue_aware = queue_aware
        self.queue_wait_penalty = queue_wait_penalty
        self.forecast_cache_s = forecast_cache_s
        self._cache: dict[tuple[tuple[str, ...], float], ForecastStack] = {}
        self._offsets: dict[tuple[str, float], float] = {}

    # -- inputs --------------------------------------------------------------------------
    def set_regions(self, regions: Sequence[Region]) -> None:
        """Use this view of the regions from now on (e.g. with live capacity)."""
        self.regions = list(regions)

    def candidate_regions(self, names: Sequence[str] | None) -> list[Region]:
        if names is None:
            return [r for r in self.regions if r.enabled]
        by_name = {r.name: r for r in self.regions}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise SchedulingError(f"unknown candidate region(s): {', '.join(unknown)}")
        return [by_name[n] for n in names]

    def _queue_rounds(self, region: Region, load: RegionLoad) -> float:
        # Jobs ahead of us beyond the free slots drain `capacity` at a time: the wait is this
        # many runs of (about) our own length.
        if not self.queue_aware or region.capacity <= 0 or load.backlog < region.capacity:
            return 0.0
        return float(math.ceil((load.backlog - region.capacity + 1) / region.capacity))

    def _window(self, req: PlacementRequest, now_s: float) -> tuple[float, float]:
        start = max(as_utc(req.earliest).timestamp(), now_s)
        return start, start + (_slack(req, start) if self.policy.temporal else 0.0)

    def _forecasts(self, regions: Sequence[Region], now: datetime, horizon_s: int) -> ForecastStack:
        # Forecasts change at most once per step: reuse them for `forecast_cache_s` so a burst
        # of decisions costs one provider call per zone, not one per decision.
        now_s = as_utc(now).timestamp()
        bucket = float(now_s // self.forecast_cache_s) if self.forecast_cache_s > 0 else now_s
        key = (tuple([r.name for r in regions]), bucket)
        hit = self._cache.get(key)
        if hit is not None and hit.covers(now_s + horizon_s):
            return hit
        series: list[IntensitySeries | None] = []
        errors: dict[str, str] = {}
        for r in regions:
            try:
                series.append(self.provider.forecast(r.zone, now, horizon_s))
            except CarbonDataError as exc:
                series.append(None)
                errors[r.name] = f"no carbon data: {exc}"
        if len(self._cache) > 256:
            self._cache.clear()
        stack = self._cache[key] = ForecastStack.build(series, errors, self._errors(regions, now, horizon_s))
        return stack

    def _errors(self, regions: Sequence[Region], now: datetime, horizon_s: int) -> list[list[float]] | None:
        """The provider's measured forecast error per region (for the regret guard), when it
        measures one and the policy can wait."""
        measure = getattr(self.provider, "forecast_error", None)
        if self.forecast_margin <= 0 or not self.policy.temporal or not callable(measure):
            return None
        out: list[list[float]] = []
        for r in regions:
            try:
                out.append(list(measure(r.zone, now, horizon_s)))
            except CarbonDataError:
                out.append([])
        return out

    def _replay_offset(self, zone: str, now: datetime) -> float:
        """Seconds to add to ``now`` to reach the carbon data's time (0 unless replaying)."""
        replay = getattr(self.provider, "now", None)
        if not callable(replay):
            return 0.0
        bucket = float(as_utc(now).timestamp() // max(self.forecast_cache_s, 1.0))
        key = (zone, bucket)
        if key not in self._offsets:
            try:
                self.provider.series(zone, now, now + timedelta(hours=1))
                self._offsets[key] = 0.0
            except CarbonDataError:
                self._offsets[key] = (as_utc(replay(zone)) - as_utc(now)).total_seconds()
            if len(self._offsets) > 1024:
                self._offsets = {key: self._offsets[key]}
        return self._offsets[key]

    # -- the decision ----------------------------------------------------------------------
    def place(
        self, req: PlacementRequest, now: datetime, loads: Mapping[str, RegionLoad] | None = None,
        *, replay: bool = True,
    ) -> Placement:
        """Place one job (raises :class:`SchedulingError` when no region is viable).

        ``replay``: when the carbon data do not cover ``now`` and the provider can replay
        (data sets), decide on its replayed time; False decides on ``now`` or fails."""
        placement = self._place_one(req, now, loads or {}, replay)
        if placement is None:  # forecasts not on one grid: the general path
            placement = self.place_many([req], now, loads, replay=replay)[0]
        if isinstance(placement, SchedulingError):
            raise placement
        return placement

    def _place_one(
        self, req: PlacementRequest, now: datetime, loads: Mapping[str, RegionLoad], replay: bool
    ) -> Placement | SchedulingError | None:
        """:meth:`_place_group` for one job in plain floats (a decision touches ~R x S cells,
        where numpy's per-call overhead dominates); None when the forecasts share no grid."""
        regions = self.candidate_regions(None if req.regions is None else tuple(req.regions))
        if not regions:
            return SchedulingError("no candidate regions (all disabled?)")
        shift = self._replay_offset(regions[0].zone, now) if replay else 0.0
        now = now + timedelta(seconds=shift)
        now_s = as_utc(now).timestamp()
        w0, w1 = self._window(req, now_s - shift)
        w0, w1 = w0 + shift, w1 + shift
        runtime = float(req.runtime_s)
        waits = [runtime * self._queue_rounds(r, loads.get(r.name, IDLE)) if loads else 0.0 for r in regions]
        stack = self._forecasts(regions, now, int(w1 - now_s + max(waits) + runtime) + 1)
        if stack.grid is None:
            return None
        starts, intensity = stack.means_one(w0, w1, runtime, waits)
        kwh = run_kwh(runtime, req.cores * (req.watts_per_core or self.watts_per_core), self.pue)
        pen = self.queue_wait_penalty
        costs = [[kwh * (i + pen * wait / 3600.0) for i in row] for row, wait in zip(intensity, waits, strict=True)]
        guard = stack.guard(starts, self.forecast_margin)
        if guard is not None:
            costs = [[c * f for c, f in zip(row, g, strict=True)] for row, g in zip(costs, guard, strict=True)]
        usable, why = self._usable(regions, loads, stack.errors)
        usable, why = self._spill(regions, loads, usable, why, waits, _slack(req, w0 - shift))
        names = [r.name for r in regions]
        ri, si = self.policy.choose_one(costs, usable, job=req.job, regions=names)
        if ri < 0:
            detail = "; ".join(f"{r.name}: {why[r.name] or 'no data'}" for r in regions)
            return SchedulingError(f"no viable candidate region ({detail})")
        return Placement(
            policy=self.policy.name, region=names[ri],
            start=datetime.fromtimestamp(starts[si] - shift, UTC),
            expected_g=kwh * intensity[ri][si], intensity=intensity[ri][si],
            runtime_s=req.runtime_s, energy_kwh=kwh,
            explain_data=Explain(self.policy.name, regions, [t - shift for t in starts], intensity, costs,
                                  kwh, waits, loads, why, usable, ri, si, shift, guard, self.forecast_margin),
        )

    def place_many(
        self, reqs: Sequence[PlacementRequest], now: datetime,
        loads: Mapping[str, RegionLoad] | None = None, *, replay: bool = True,
    ) -> list[Placement | SchedulingError]:
        """Place a batch with one kernel call per candidate-region set (the same answers as
        calling :meth:`place` for each); a job with no viable region gets its error."""
        out: list[Placement | SchedulingError | None] = [None] * len(reqs)
        groups: dict[tuple[str, ...] | None, list[int]] = {}
        for i, req in enumerate(reqs):
            groups.setdefault(None if req.regions is None else tuple(req.regions), []).append(i)
        for names, idx in groups.items():
            placed = self._place_group(names, [reqs[i] for i in idx], now, loads or {}, replay)
            for i, result in zip(idx, placed, strict=True):
                out[i] = result
        return [r for r in out if r is not None]

    def _place_group(
        self, names: Sequence[str] | None, reqs: Sequence[PlacementRequest], now: datetime,
        loads: Mapping[str, RegionLoad], replay: bool,
    ) -> list[Placement | SchedulingError]:
        regions = self.candidate_regions(names)
        if not regions:
            return [SchedulingError("no candidate regions (all disabled?)") for _ in reqs]
        # Historical data sets may not cover today: then decide on the provider's replayed
        # "now" and shift every time by the same offset (delays stay as decided).
        shift = self._replay_offset(regions[0].zone, now) if replay else 0.0
        now = now + timedelta(seconds=shift)
        now_s = as_utc(now).timestamp()
        windows = np.array([self._window(r, now_s - shift) for r in reqs]) + shift
        runtime = np.array([r.runtime_s for r in reqs], dtype=np.float64)
        rounds = np.array([self._queue_rounds(r, loads.get(r.name, IDLE)) for r in regions])
        waits = runtime[:, None] * rounds[None, :]  # [J, R] seconds
        horizon = int(windows[:, 1].max() - now_s + waits.max() + runtime.max()) + 1
        stack = self._forecasts(regions, now, horizon)
        starts = self._starts(stack, windows, runtime, waits)  # [J, S], NaN padding
        intensity = stack.mean(starts[:, None, :] + waits[:, :, None], runtime[:, None, None])
        watts = np.array([r.cores * (r.watts_per_core or self.watts_per_core) for r in reqs])
        kwh = run_kwh(runtime, watts, self.pue)
        costs = kwh[:, None, None] * (intensity + self.queue_wait_penalty * waits[:, :, None] / 3600.0)
        factors: list[list[list[float]] | None] = [None] * len(reqs)
        if stack.rel_error is not None:
            factors = [stack.guard(row.tolist(), self.forecast_margin) for row in starts]
            if factors[0] is not None:
                costs = costs * np.array(factors)
        usable, why = self._usable(regions, loads, stack.errors)
        spilled = [self._spill(regions, loads, usable, why, waits[j].tolist(), _slack(req, windows[j, 0] - shift))
                   for j, req in enumerate(reqs)]
        feasible = np.array([u for u, _ in spilled], dtype=bool)  # [J, R]
        r_idx, s_idx = self.policy.choose(
            costs, feasible[:, :, None], jobs=[r.job for r in reqs], regions=[r.name for r in regions]
        )
        results: list[Placement | SchedulingError] = []
        for j, req in enumerate(reqs):
            ri, si = int(r_idx[j]), int(s_idx[j])
            if ri < 0:
                detail = "; ".join(f"{r.name}: {why[r.name] or 'no data'}" for r in regions)
                results.append(SchedulingError(f"no viable candidate region ({detail})"))
                continue
            results.append(Placement(
                policy=self.policy.name, region=regions[ri].name,
                start=datetime.fromtimestamp(float(starts[j, si]) - shift, UTC),
                expected_g=float(kwh[j] * intensity[j, ri, si]), intensity=float(intensity[j, ri, si]),
                runtime_s=req.runtime_s, energy_kwh=float(kwh[j]),
                explain_data=Explain(self.policy.name, regions, starts[j] - shift, intensity[j], costs[j],
                                      float(kwh[j]), waits[j], loads, spilled[j][1], feasible[j], ri, si, shift,
                                      factors[j], self.forecast_margin),
            ))
        return results

    @staticmethod
    def _starts(stack: ForecastStack, windows: FloatArray, runtime: FloatArray, waits: FloatArray) -> FloatArray:
        """Candidate starts per job ``[J, S]`` (sorted, NaN padding): the window ends and
        every start at which the run, shifted by a region's queue wait, starts or ends on a
        step boundary (:mod:`greengrader.carbon.integral`: the optimum is one of these)."""
        w0, w1 = windows[:, 0], windows[:, 1]
        if not (w1 > w0).any():
            out0: FloatArray = w0[:, None].copy()
            return out0
        grids = [stack.grid] if stack.grid is not None else sorted(
            {(s.start_s, float(s.step_s)) for s in stack.series if s is not None})
        parts = []
        for origin, step in grids:
            for wait in np.unique(waits, axis=1).T:
                parts.append(integral.candidate_matrix(origin, step, w0 + wait, w1 + wait, runtime) - wait[:, None])
        if not parts:
            return w0[:, None].copy()
        out: FloatArray = np.sort(np.concatenate(parts, axis=1), axis=1)
        return out

    def _usable(
        self, regions: Sequence[Region], loads: Mapping[str, RegionLoad], errors: Mapping[str, str]
    ) -> tuple[list[bool], dict[str, str | None]]:
        why: dict[str, str | None] = {}
        for r in regions:
            if r.name in errors:
                why[r.name] = errors[r.name]
            elif not r.enabled:
                why[r.name] = "region disabled"
            elif r.live_workers == 0:
                why[r.name] = "no live worker"
            elif r.untainted_nodes <= 0:
                why[r.name] = "no untainted node"
            elif r.capacity <= 0:
                why[r.name] = "no worker slots"
            else:
                why[r.name] = None
        usable = [why[r.name] is None for r in regions]
        if self.capacity_aware and loads:  # without load no usable region (capacity > 0) is full
            full = [loads.get(r.name, IDLE).backlog >= r.capacity for r in regions]
            # Skip full regions for the next best, unless every usable region is full.
            if any(u and not f for u, f in zip(usable, full, strict=True)):
                for r, u, f in zip(regions, usable, full, strict=True):
                    if u and f:
                        why[r.name] = "no free worker slot"
        return [why[r.name] is None for r in regions], why

    def _spill(
        self, regions: Sequence[Region], loads: Mapping[str, RegionLoad], usable: list[bool],
        why: dict[str, str | None], waits: Sequence[float], slack_s: float,
    ) -> tuple[list[bool], dict[str, str | None]]:
        """With every usable region full, a job waits only where its queue wait fits the
        delay it allows, else where it starts soonest: on a deadline night a green region's
        long queue must not leave other regions' slots idle (the carbon gain of waiting in
        line is the slack's to buy, like any other delay)."""
        if not (self.capacity_aware and loads and any(usable)):
            return usable, why
        if any(u and loads.get(r.name, IDLE).backlog < r.capacity for r, u in zip(regions, usable, strict=True)):
            return usable, why  # a free slot somewhere: _usable already skipped the full ones
        fits = [u and w <= slack_s + 1e-6 for u, w in zip(usable, waits, strict=True)]
        if not any(fits):
            soonest = min(w for u, w in zip(usable, waits, strict=True) if u)
            fits = [u and w <= soonest + 1e-6 for u, w in zip(usable, waits, strict=True)]
        if fits == usable:
            return usable, why
        out = dict(why)
        for r, u, f, w in zip(regions, usable, fits, waits, strict=True):
            if u and not f:
                out[r.name] = f"queue wait about {w:.0f} s, longer than the allowed delay and than elsewhere"
        return fits, out


def _slack(req: PlacementRequest, start_s: float) -> float:
    """Seconds a job may wait from ``start_s``: its allowed delay, capped by its deadline."""
    end = start_s + req.max_delay_s
    if req.deadline is not None:
        end = min(end, as_utc(req.deadline).timestamp() - req.runtime_s)
    return max(0.0, end - start_s)
