"""Online placement: build the cost cube from the carbon forecast, the region registry and
the regions' load, then let a policy kernel choose (one job, or a batch in one call).

Costs are expected gCO2 = energy (runtime x cores x W per core x PUE) x mean forecast
intensity over the run. A region whose queue is backed up runs the job later: its cost is
evaluated at the start plus the expected queue wait, plus ``queue_wait_penalty`` (gCO2/kWh
per hour of wait, times the job's energy), so a region only wins if its carbon gain
outweighs the wait (queue awareness). With capacity awareness a region without a free
worker slot or an untainted node is skipped and the next best taken.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from statistics import median
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from greengrader.carbon import integral
from greengrader.carbon.base import CarbonProvider, IntensitySeries
from greengrader.errors import CarbonDataError, SchedulingError
from greengrader.regions.registry import Region
from greengrader.scheduling.policies import BoolArray, FloatArray, Policy
from greengrader.times import as_utc

J_PER_KWH = 3.6e6
# How long a fetched forecast is reused across decisions (see _forecasts).
FORECAST_CACHE_S = 60.0


@dataclass(frozen=True)
class RegionLoad:
    """Jobs a region currently holds (from the database)."""

    queued: int = 0
    running: int = 0

    @property
    def backlog(self) -> int:
        return self.queued + self.running


_IDLE = RegionLoad()


@dataclass(frozen=True)
class PlacementRequest:
    """What one job needs: when it may start, how long it runs, how long it may wait."""

    earliest: datetime
    runtime_s: float
    max_delay_s: float = 0.0
    deadline: datetime | None = None
    job: int = 0  # a stable job number (submission id): round-robin and random use it
    cores: float = 1.0
    watts_per_core: float | None = None  # default: the placer's
    regions: Sequence[str] | None = None  # candidate region names (default: all enabled)


@dataclass(frozen=True)
class Candidate:
    """One region as the policy saw it (stored in the Decision for ``explain``)."""

    region: str
    zone: str
    intensity: float | None  # mean forecast g/kWh over the run starting at the earliest start
    expected_g: float | None
    best_start: str | None = None  # ISO time of this region's cheapest allowed start
    best_intensity: float | None = None
    forecast_error: float | None = None  # measured relative error at best_start (regret guard)
    queue_wait_s: float = 0.0
    backlog: int = 0
    feasible: bool = True
    why_not: str | None = None


@dataclass(frozen=True)
class Placement:
    """The answer: where and when, what it is expected to emit, and why."""

    policy: str
    region: str
    start: datetime
    expected_g: float
    intensity: float
    runtime_s: float
    energy_kwh: float
    fallback: str | None = None
    reason_text: str | None = None
    candidate_detail: dict[str, Candidate] | None = None
    explain_data: _Explain | None = field(default=None, repr=False, compare=False)

    @cached_property
    def reason(self) -> str:
        if self.reason_text is not None:
            return self.reason_text
        return self.explain_data.reason() if self.explain_data is not None else self.policy

    @cached_property
    def candidates(self) -> dict[str, Candidate]:
        if self.candidate_detail is not None:
            return self.candidate_detail
        return self.explain_data.candidates() if self.explain_data is not None else {}

    def saved_vs(self, region: str) -> float | None:
        """Expected gCO2 saved versus running now in ``region`` (None if it had no data)."""
        c = self.candidates.get(region)
        return None if c is None or c.expected_g is None else c.expected_g - self.expected_g

    def candidates_json(self) -> dict[str, Any]:
        return {name: asdict(c) for name, c in self.candidates.items()}


def energy_kwh(runtime_s: float, cores: float, watts_per_core: float, pue: float) -> float:
    """Expected energy of a run (the c3lab model: W per core x cores x time x PUE)."""
    return max(runtime_s, 0.0) * cores * watts_per_core * pue / J_PER_KWH


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


@dataclass(frozen=True)
class _Stack:
    """The candidate regions' forecasts; stacked into one matrix when they share a grid."""

    series: list[IntensitySeries | None]
    errors: dict[str, str]
    grid: tuple[float, int] | None = None  # (start epoch s, step s) when stacked
    values: FloatArray | None = None  # [R, N], NaN rows for regions without data
    cum: FloatArray | None = None  # [R, N + 1] running integral (g/kWh x s)
    # Measured relative forecast error per region and steps ahead of the first forecast
    # step (the regret guard); None when the provider measures none.
    rel_error: list[list[float]] | None = None
    # Means at grid-step starts for the single-decision path, keyed by the window's steps,
    # runtime and queue waits: they only change when the window crosses a step boundary.
    _grid_means: dict[tuple[float, int, float, tuple[float, ...]], list[list[float]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(
        cls, series: list[IntensitySeries | None], errors: dict[str, str], rel_error: list[list[float]] | None = None,
    ) -> _Stack:
        present = [s for s in series if s is not None]
        if not present or len({(s.start_s, s.step_s) for s in present}) != 1:
            return cls(series, errors)
        n = min(len(s) for s in present)
        values = np.full((len(series), n), np.nan)
        for i, s in enumerate(series):
            if s is not None:
                values[i] = s.values[:n]
        cum = integral.cumulative(values, present[0].step_s)
        return cls(series, errors, (present[0].start_s, present[0].step_s), values, cum, rel_error)

    def guard(self, starts: Sequence[float], margin: float) -> list[list[float]] | None:
        """Cost factor ``[R][S]`` of the regret guard: ``1 + margin x`` the measured error at
        each start's horizon (None: no guard)."""
        if margin <= 0 or self.rel_error is None or self.grid is None:
            return None
        start_s, step = self.grid
        ahead = [max(0, int((t - start_s) // step)) if t == t else 0 for t in starts]
        return [[1.0 + margin * row[min(h, len(row) - 1)] for h in ahead] if row else [1.0] * len(ahead)
                for row in self.rel_error]

    @cached_property
    def _end_s(self) -> float:
        return min((s.end_s for s in self.series if s is not None), default=math.inf)

    def covers(self, until_s: float) -> bool:
        return self._end_s >= until_s

    def mean(self, starts: FloatArray, runtime_s: FloatArray) -> FloatArray:
        """Mean intensity over ``[t, t + runtime)`` for ``starts[J, R, S]`` and
        ``runtime[J, 1, 1]`` (inf where there is no data or the start is NaN padding)."""
        if self.grid is None or self.values is None or self.cum is None:
            return self._mean_each(starts, runtime_s)
        start_s, step = self.grid
        values, cum = self.values, self.cum
        rows = np.arange(starts.shape[1])[None, :, None]
        clean = np.nan_to_num(starts)
        mean = integral.mean_intensity(start_s, step, values, cum, clean, runtime_s, rows)
        ok = integral.inside(start_s, step, values.shape[1], starts, runtime_s) & np.isfinite(mean)
        out: FloatArray = np.where(ok, mean, np.inf)
        return out

    @cached_property
    def _lists(self) -> tuple[list[list[float]], list[list[float]]]:
        # Plain floats: one decision touches ~R x S cells, where numpy's per-call overhead
        # costs more than the arithmetic.
        assert self.values is not None and self.cum is not None
        return self.values.tolist(), self.cum.tolist()

    def _mean_one(self, r: int, eff: float, dur: float) -> float:
        """:meth:`mean` for one cell (the same integral, so the same answer)."""
        assert self.grid is not None
        start_s, step = self.grid
        values, cum = self._lists
        return integral.mean_one(start_s, step, values[r], cum[r], eff, dur)

    def _column(self, eff: float, dur: float) -> list[float]:
        """:meth:`_mean_one` for every region at one start."""
        assert self.grid is not None
        start_s, step = self.grid
        values, cum = self._lists
        return integral.mean_column(start_s, step, values, cum, eff, dur)

    def _means_at(self, t: float, dur: float, waits: Sequence[float]) -> list[float]:
        if all(w == waits[0] for w in waits):  # the usual case: no queue waits
            return self._column(t + waits[0], dur)
        return [self._mean_one(r, t + wait, dur) for r, wait in enumerate(waits)]

    def means_one(
        self, w0: float, w1: float, runtime_s: float, waits: Sequence[float]
    ) -> tuple[list[float], list[list[float]]]:
        """Candidate starts ``[S]`` and mean intensities ``[R][S]`` for one job on the grid
        (what :meth:`Placer._starts` and :meth:`mean` give for a batch of one)."""
        assert self.grid is not None
        start_s, step = self.grid
        dur = max(runtime_s, 1e-9)
        inner = _inner_starts(start_s, step, w0, w1, runtime_s, waits)
        # The interior starts sit on the grid: their means only change when the window
        # gains or loses one, so they are cached; the window ends are computed each time.
        key = (inner[0] if inner else 0.0, len(inner), runtime_s, tuple(waits))
        later = self._grid_means.get(key)
        if later is None:
            columns = [self._means_at(g, dur, waits) for g in inner]
            later = [list(row) for row in zip(*columns, strict=True)] if columns else [[] for _ in waits]
            if len(self._grid_means) > 4096:
                self._grid_means.clear()
            self._grid_means[key] = later
        first = self._means_at(w0, dur, waits)
        if w1 <= w0:
            return [w0], [[m] for m in first]
        last = self._means_at(w1, dur, waits)
        return [w0, *inner, w1], [[m, *rest, z] for m, rest, z in zip(first, later, last, strict=True)]

    def _mean_each(self, starts: FloatArray, runtime_s: FloatArray) -> FloatArray:
        out = np.full(starts.shape, np.inf)
        dur = np.broadcast_to(runtime_s, starts.shape)
        for i, s in enumerate(self.series):
            if s is None:
                continue
            eff, d = starts[:, i, :], dur[:, i, :]
            with np.errstate(invalid="ignore"):
                inside = (eff >= s.start_s) & (eff + d <= s.end_s + 1e-6)
            for j, k in zip(*np.nonzero(inside), strict=True):
                out[j, i, k] = s.mean_over_many(np.array([eff[j, k]]), float(d[j, k]))[0]
        return out


def _inner_starts(
    origin_s: float, step_s: float, w0: float, w1: float, runtime_s: float, waits: Sequence[float]
) -> list[float]:
    """Interior candidate starts of one window for every distinct queue wait (sorted)."""
    distinct = set(waits)
    if len(distinct) == 1:
        (wait,) = distinct
        if wait == 0:
            return integral.interior_list(origin_s, step_s, w0, w1, runtime_s)
        return [t - wait for t in integral.interior_list(origin_s, step_s, w0 + wait, w1 + wait, runtime_s)]
    merged = np.concatenate([
        integral.interior_candidates(origin_s, step_s, w0 + w, w1 + w, runtime_s) - w for w in sorted(distinct)
    ])
    return [float(t) for t in np.unique(merged[(merged > w0) & (merged < w1)]).tolist()]


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
        self._cache: dict[tuple[tuple[str, ...], float], _Stack] = {}
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
        end = start + (req.max_delay_s if self.policy.temporal else 0.0)
        if req.deadline is not None:
            end = min(end, as_utc(req.deadline).timestamp() - req.runtime_s)
        return start, max(start, end)

    def _forecasts(self, regions: Sequence[Region], now: datetime, horizon_s: int) -> _Stack:
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
        stack = self._cache[key] = _Stack.build(series, errors, self._errors(regions, now, horizon_s))
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
        waits = [runtime * self._queue_rounds(r, loads.get(r.name, _IDLE)) if loads else 0.0 for r in regions]
        stack = self._forecasts(regions, now, int(w1 - now_s + max(waits) + runtime) + 1)
        if stack.grid is None:
            return None
        starts, intensity = stack.means_one(w0, w1, runtime, waits)
        kwh = runtime * (req.cores * (req.watts_per_core or self.watts_per_core)) * self.pue / J_PER_KWH
        pen = self.queue_wait_penalty
        costs = [[kwh * (i + pen * wait / 3600.0) for i in row] for row, wait in zip(intensity, waits, strict=True)]
        guard = stack.guard(starts, self.forecast_margin)
        if guard is not None:
            costs = [[c * f for c, f in zip(row, g, strict=True)] for row, g in zip(costs, guard, strict=True)]
        usable, why = self._usable(regions, loads, stack.errors)
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
            explain_data=_Explain(self.policy.name, regions, [t - shift for t in starts], intensity, costs,
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
        rounds = np.array([self._queue_rounds(r, loads.get(r.name, _IDLE)) for r in regions])
        waits = runtime[:, None] * rounds[None, :]  # [J, R] seconds
        horizon = int(windows[:, 1].max() - now_s + waits.max() + runtime.max()) + 1
        stack = self._forecasts(regions, now, horizon)
        starts = self._starts(stack, windows, runtime, waits)  # [J, S], NaN padding
        intensity = stack.mean(starts[:, None, :] + waits[:, :, None], runtime[:, None, None])
        watts = np.array([r.cores * (r.watts_per_core or self.watts_per_core) for r in reqs])
        kwh = runtime * watts * self.pue / J_PER_KWH
        costs = kwh[:, None, None] * (intensity + self.queue_wait_penalty * waits[:, :, None] / 3600.0)
        factors: list[list[list[float]] | None] = [None] * len(reqs)
        if stack.rel_error is not None:
            factors = [stack.guard(row.tolist(), self.forecast_margin) for row in starts]
            if factors[0] is not None:
                costs = costs * np.array(factors)
        feasible, why = self._feasible(regions, loads, stack.errors)
        r_idx, s_idx = self.policy.choose(
            costs, feasible[None, :, None], jobs=[r.job for r in reqs], regions=[r.name for r in regions]
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
                explain_data=_Explain(self.policy.name, regions, starts[j] - shift, intensity[j], costs[j],
                                      float(kwh[j]), waits[j], loads, why, feasible, ri, si, shift,
                                      factors[j], self.forecast_margin),
            ))
        return results

    @staticmethod
    def _starts(stack: _Stack, windows: FloatArray, runtime: FloatArray, waits: FloatArray) -> FloatArray:
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

    def _feasible(
        self, regions: Sequence[Region], loads: Mapping[str, RegionLoad], errors: Mapping[str, str]
    ) -> tuple[BoolArray, dict[str, str | None]]:
        usable, why = self._usable(regions, loads, errors)
        return np.array(usable, dtype=bool), why

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
            full = [loads.get(r.name, _IDLE).backlog >= r.capacity for r in regions]
            # Skip full regions for the next best, unless every usable region is full.
            if any(u and not f for u, f in zip(usable, full, strict=True)):
                for r, u, f in zip(regions, usable, full, strict=True):
                    if u and f:
                        why[r.name] = "no free worker slot"
        return [why[r.name] is None for r in regions], why


@dataclass(frozen=True)
class _Explain:
    """What a decision saw; turned into per-candidate detail and a reason only on demand
    (a batch of decisions should not pay for text nobody reads). Arrays or lists: the batch
    path hands numpy rows, the single-decision path plain lists."""

    policy: str
    regions: Sequence[Region]
    starts: FloatArray | Sequence[float]  # [S]
    intensity: FloatArray | Sequence[Sequence[float]]  # [R, S]
    costs: FloatArray | Sequence[Sequence[float]]  # [R, S]
    kwh: float
    waits: FloatArray | Sequence[float]  # [R]
    loads: Mapping[str, RegionLoad]
    why: Mapping[str, str | None]
    feasible: BoolArray | Sequence[bool]
    ri: int
    si: int
    shift: float = 0.0
    guard: Sequence[Sequence[float]] | None = None  # [R, S] regret-guard cost factors
    margin: float = 0.0

    def _error(self, r: int, s: int) -> float | None:
        if self.guard is None or self.margin <= 0:
            return None
        return (self.guard[r][s] - 1.0) / self.margin

    def candidates(self) -> dict[str, Candidate]:
        costs, intensity = _plain(self.costs), _plain(self.intensity)
        starts, waits = _plain(self.starts), _plain(self.waits)
        out: dict[str, Candidate] = {}
        iso: dict[int, str] = {}  # regions mostly share their best start: format it once
        for i, r in enumerate(self.regions):
            row = costs[i]
            low = min(row)
            if low == low and math.isfinite(low):  # no NaN in front, a finite minimum
                best: int | None = row.index(low)  # the first minimum
            else:
                finite = [k for k, c in enumerate(row) if math.isfinite(c)]
                best = min(finite, key=row.__getitem__) if finite else None
            if best is not None and best not in iso:
                iso[best] = _iso(starts[best])
            now_i = intensity[i][0]
            known = math.isfinite(now_i)
            out[r.name] = Candidate(
                region=r.name, zone=r.zone,
                intensity=now_i if known else None,
                expected_g=self.kwh * now_i if known else None,
                best_start=iso[best] if best is not None else None,
                best_intensity=intensity[i][best] if best is not None else None,
                forecast_error=self._error(i, best) if best is not None else None,
                queue_wait_s=waits[i], backlog=self.loads.get(r.name, _IDLE).backlog,
                feasible=self.why[r.name] is None, why_not=self.why[r.name],
            )
        return out

    def reason(self) -> str:
        intensity, starts, waits = _plain(self.intensity), _plain(self.starts), _plain(self.waits)
        chosen, start = self.regions[self.ri].name, float(starts[self.si])
        delay_h = (start - float(starts[0])) / 3600.0
        when = "now" if delay_h < 1e-9 else f"at {_iso(start)} (+{delay_h:.1f} h)"
        parts = [f"{self.policy}: {chosen} {when}, {intensity[self.ri][self.si]:.0f} g/kWh expected"]
        now_col = [row[0] if ok else math.inf for row, ok in zip(intensity, _plain(self.feasible), strict=True)]
        finite = [k for k, v in enumerate(now_col) if math.isfinite(v)]
        if finite:
            bi = min(finite, key=now_col.__getitem__)
            parts.append(f"best immediate: {self.regions[bi].name} {now_col[bi]:.0f} g/kWh")
        parts += self._guard_reason(intensity)
        skipped = [f"{n} ({w})" for n, w in self.why.items() if w]
        if skipped:
            parts.append("skipped " + ", ".join(skipped))
        if waits[self.ri] > 0:
            parts.append(f"queue wait ~{waits[self.ri]:.0f} s")
        if self.shift:
            parts.append(f"carbon data replayed at {_iso(float(starts[0]) + self.shift)}")
        return "; ".join(parts)


    def _guard_reason(self, intensity: Sequence[Sequence[float]]) -> list[str]:
        """Why the job waited or ran now, against the forecast's measured error."""
        if self.guard is None or self.margin <= 0:
            return []
        chosen = intensity[self.ri][self.si]
        if self.si > 0:
            now = intensity[self.ri][0]
            err = self._error(self.ri, self.si) or 0.0
            saving = (now - chosen) / chosen * 100.0 if chosen > 0 else 0.0
            return [f"waited: forecast {chosen:.0f} g/kWh ± {100 * err:.0f} % saves {saving:.0f} % vs now, "
                    f"beyond the margin of {self.margin:g} x the error"]
        ok = _plain(self.feasible)
        later = [(v, r, k) for r, row in enumerate(intensity) if ok[r] for k, v in enumerate(row) if k > 0 and math.isfinite(v)]
        if not later or min(later)[0] >= chosen:
            return []
        v, r, k = min(later)
        err = self._error(r, k) or 0.0
        return [f"ran now: a later start looked {(chosen - v) / v * 100.0:.0f} % cheaper "
                f"({v:.0f} g/kWh ± {100 * err:.0f} %), within the margin of {self.margin:g} x the error"]


def _plain(x: Any) -> Any:
    """Nested Python lists from a numpy array (or the list itself)."""
    return x.tolist() if isinstance(x, np.ndarray) else x


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
