"""Where and when each job of a trace starts under one policy and one forecast: exact
decisions, fast enough for a million jobs.

A job arriving at ``a`` may start anywhere in ``[a, w1]`` (``w1``: ``a`` + slack, or
deadline - runtime). The mean intensity of a run is piecewise linear in its start, so the
optimum is one of the candidate starts of :mod:`greengrader.carbon.integral`: a window end,
or a start where the run starts or ends on a step boundary. Decisions weigh the mean over
the whole run at each candidate, the way the online placer does.

Most grading runs are shorter than a step, and neither the run from ``a`` nor the run from
``w1`` crosses a boundary. For such a job (**on the grid**) the candidates reduce to ``a``
and the step boundaries inside the window, each costing the one step value the run lies in
(the others cost the same as an earlier one): one cost per (region, step) shared by every
job, which the policies' grid kernel (:meth:`~greengrader.scheduling.policies.Policy.choose_grid`,
a sliding-window minimum) decides for a million jobs in a fraction of a second. Every other
job (longer than a step, or crossing a boundary from ``a`` or ``w1``) is decided on a cube
of its exact candidates (:func:`~greengrader.carbon.integral.candidate_matrix`, priced by
:func:`~greengrader.carbon.integral.mean_intensity`) with
:meth:`~greengrader.scheduling.policies.Policy.choose`. Both use the policies' one tie rule
(lowest region, then earliest start).

Forecast-driven decisions see, for a job arriving in step ``H``, the nowcast (the actual
value of ``H``) and the forecast issued in ``H`` for every later step the run touches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from greengrader.carbon import integral
from greengrader.carbon.forecast import predict
from greengrader.errors import SimulationError
from greengrader.scheduling.policies import NO_CHOICE, Policy
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.traces import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: ``(region, step, start_s)`` per job; ``step`` is the grid step of the start (the
#: capacity cell), ``NO_CHOICE`` when nothing was feasible.
Choice = tuple[IntArray, IntArray, FloatArray]
#: ``decide(jobs, remaining)``: choices for ``jobs`` given the free starts per (region, step)
#: (``None``: no capacity limit).
Decide = Callable[[IntArray, "IntArray | None"], Choice]
#: Cells of one exact-candidate cube (jobs x regions x starts) priced at once: bounds the
#: memory of traces made of long runs.
CUBE_CELLS = 1 << 22
#: Jobs whose exact costs capacity rounds keep (a round re-decides the jobs after the first
#: claim that no longer fitted; earlier ones are committed and never asked again).
CACHED_JOBS = 4096


@dataclass(frozen=True, eq=False)
class Windows:
    """Per job: the allowed starts ``[w0, w1]`` (epoch s), the run length, the grid steps
    of ``w0`` (``first``) and of every boundary up to ``w1`` (``n_starts`` of them, ``w0``'s
    step included), and whether each run from ``w0`` / ``w1`` stays inside its step."""

    w0: FloatArray
    w1: FloatArray
    runtime: FloatArray
    first: IntArray
    n_starts: IntArray
    inside_first: BoolArray
    inside_last: BoolArray

    @classmethod
    def of(cls, trace: Trace, grid: CarbonGrid, slack_s: float, respect_deadlines: bool) -> Windows:
        w0, runtime = trace.arrival_s, trace.runtime_s
        w1 = w0 + slack_s
        if respect_deadlines:
            by_deadline = np.maximum(w0, trace.deadline_s - runtime)
            w1 = np.where(np.isnan(trace.deadline_s), w1, np.minimum(w1, by_deadline))
        first, last = grid.step_index(w0), grid.step_index(w1)
        if len(trace) and (first.min() < 0 or float((w1 + runtime).max()) > grid.end_s + integral.EDGE_S):
            raise SimulationError(
                f"the trace ({trace.start:%Y-%m-%d %H:%M} .. {trace.end:%Y-%m-%d %H:%M} UTC, plus "
                f"{slack_s / 3600:g} h of slack) is not inside the carbon data "
                f"({grid.start:%Y-%m-%d %H:%M} .. {grid.end:%Y-%m-%d %H:%M} UTC)"
            )
        short = runtime <= grid.step_s

        def inside(t: FloatArray, step: IntArray) -> BoolArray:
            out: BoolArray = short & (t + runtime <= grid.start_s + (step + 1) * float(grid.step_s))
            return out

        return cls(w0, w1, runtime, first, np.maximum(last - first + 1, 1),
                   inside(w0, first), inside(w1, last))

    def on_grid(self, temporal: bool) -> BoolArray:
        """Jobs whose exact candidates are ``w0`` and the boundaries, each in one step."""
        return self.inside_first & self.inside_last if temporal else self.inside_first


class PolicyDecider:
    """Decisions of one policy under one forecast for a subset of jobs (a :data:`Decide`)."""

    def __init__(self, policy: Policy, forecast: str, grid: CarbonGrid, win: Windows, margin: float = 0.0) -> None:
        self.policy, self.forecast, self.grid, self.win = policy, forecast, grid, win
        self.margin = margin
        self._on_grid = win.on_grid(policy.temporal)
        # At most this many candidates per job: the window ends, and a start and an end on
        # each boundary the window reaches.
        self._width = 2 * int(win.n_starts.max()) + 3 if len(win.w0) else 1
        self._cubes: dict[int, tuple[FloatArray, FloatArray]] = {}
        self._off = np.nonzero(~self._on_grid)[0]

    @property
    def guarded(self) -> bool:
        """Whether a later start must beat starting now by more than the forecast's error."""
        return self.forecast != "oracle" and self.margin > 0 and self.policy.temporal

    def errors(self) -> FloatArray:
        """The forecast's measured relative error ``[steps, R, >= n_starts]`` (regret guard)."""
        return self.grid.forecast_errors(self.forecast, int(self.win.n_starts.max()))

    def __call__(self, jobs: IntArray, remaining: IntArray | None) -> Choice:
        # The grid kernel runs over every job (cheaper than splitting a million-job batch);
        # the few jobs off the grid are then decided again on their exact candidates.
        region, step, start = self._grid(jobs, remaining)
        off = np.nonzero(~self._on_grid[jobs])[0]
        if off.size:
            region[off], step[off], start[off] = self._exact(jobs[off], remaining)
        return region, step, start

    # -- jobs on the grid ----------------------------------------------------------------
    def _grid(self, jobs: IntArray, remaining: IntArray | None) -> Choice:
        decide = self._grid_oracle if self.forecast == "oracle" else self._grid_forecast
        region, step = decide(jobs, remaining)
        first = self.win.first[jobs]
        boundary = self.grid.start_s + step * float(self.grid.step_s)
        return region, step, np.where(step == first, self.win.w0[jobs], boundary)

    def _grid_oracle(self, jobs: IntArray, remaining: IntArray | None) -> tuple[IntArray, IntArray]:
        first, n = self.win.first[jobs], self.win.n_starts[jobs]
        lo, hi = int(first.min()), int((first + n).max())
        mask = None if remaining is None else remaining[:, lo:hi] > 0
        r, t = self.policy.choose_grid(
            self.grid.values[:, lo:hi], first - lo, n, mask, jobs=jobs, regions=self.grid.regions,
        )
        return r, np.where(t >= 0, t + lo, NO_CHOICE)

    def _grid_forecast(self, jobs: IntArray, remaining: IntArray | None) -> tuple[IntArray, IntArray]:
        # Every job decided at the same step with the same number of starts sees the same
        # forecast, so decide once per distinct (first step, starts) and gather. Nothing
        # after the decision step is read.
        first, n = self.win.first[jobs], self.win.n_starts[jobs]
        n_max = int(n.max())
        uniq, inverse = np.unique(first * (n_max + 1) + n, return_inverse=True)
        u_first, u_n = uniq // (n_max + 1), uniq % (n_max + 1)
        cube = predict(self.grid.values, u_first, n_max, self.forecast, self.grid.step_s)
        if self.guarded:
            cube = cube * (1.0 + self.margin * self.errors()[u_first, :, :n_max])
        ok = np.broadcast_to((np.arange(n_max)[None, :] < u_n[:, None])[:, None, :], cube.shape)
        if remaining is not None:
            target = np.minimum(u_first[:, None] + np.arange(n_max)[None, :], self.grid.n_steps - 1)
            ok = ok & (remaining[:, target] > 0).transpose(1, 0, 2)
        r, s = self.policy.choose(cube, ok, jobs=np.zeros(uniq.size, dtype=np.int64), regions=self.grid.regions)
        steps = np.where(s >= 0, u_first + s, NO_CHOICE)
        return r[inverse], steps[inverse]

    # -- every other job -------------------------------------------------------------------
    def _exact(self, jobs: IntArray, remaining: IntArray | None) -> Choice:
        if remaining is None:  # one pass over these jobs: nothing to reuse
            parts = [self._pick(chunk, *self._cube(chunk)[:2], None) for chunk in self._chunks(jobs)]
        else:  # capacity rounds decide the same jobs again: price each one once
            parts = [self._pick(jobs, *self._cached_cube(jobs), remaining)]
        region, start = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        placed = region >= 0
        step = np.where(placed, self.grid.step_index(np.where(placed, start, self.grid.start_s)), NO_CHOICE)
        return region, step, start

    def _chunks(self, jobs: IntArray) -> list[IntArray]:
        per = max(1, CUBE_CELLS // (len(self.grid.regions) * self._width))
        return [jobs[i: i + per] for i in range(0, jobs.size, per)]

    def _cube(self, jobs: IntArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """Candidate starts ``[J, S]`` (padding: ``w0``), their cost ``[J, R, S]`` (padding:
        inf) and each job's number of candidates (first in its row)."""
        win = self.win
        w1 = win.w1[jobs] if self.policy.temporal else win.w0[jobs]
        starts = integral.candidate_matrix(self.grid.start_s, self.grid.step_s, win.w0[jobs], w1, win.runtime[jobs])
        known = np.isfinite(starts)
        starts = np.where(known, starts, win.w0[jobs][:, None])
        costs = self._means(jobs, starts)
        if self.guarded:
            steps = self.grid.step_index(starts)
            ahead = np.minimum(steps - win.first[jobs][:, None], int(win.n_starts.max()) - 1)
            regions = np.arange(len(self.grid.regions))[None, :, None]
            costs = costs * (1.0 + self.margin * self.errors()[win.first[jobs][:, None, None], regions, ahead[:, None, :]])
        out: FloatArray = np.where(known[:, None, :], costs, np.inf)
        return starts, out, known.sum(axis=1)

    def _cached_cube(self, jobs: IntArray) -> tuple[FloatArray, FloatArray]:
        """:meth:`_cube` for capacity rounds, from per-job rows priced once."""
        cache = self._cubes
        if len(cache) + jobs.size > max(CACHED_JOBS, 2 * jobs.size):
            cache.clear()
        missing = np.array([j for j in jobs.tolist() if j not in cache], dtype=np.int64)
        if missing.size:
            # Rounds move forward in arrival order: price the next off-grid jobs now too,
            # in one batch instead of a few per round.
            lo = int(np.searchsorted(self._off, missing.min()))
            ahead = [j for j in self._off[lo: lo + CACHED_JOBS // 2].tolist() if j not in cache]
            missing = np.union1d(missing, np.array(ahead, dtype=np.int64))
        for chunk in self._chunks(missing):
            starts, costs, counts = self._cube(chunk)
            for i, (j, k) in enumerate(zip(chunk.tolist(), counts.tolist(), strict=True)):
                cache[j] = (starts[i, :k], costs[i, :, :k])
        rows = [cache[j] for j in jobs.tolist()]
        width = max(len(r[0]) for r in rows)
        starts = np.repeat(self.win.w0[jobs][:, None], width, axis=1)
        out = np.full((jobs.size, len(self.grid.regions), width), np.inf)
        for i, (s, c) in enumerate(rows):
            starts[i, : s.size], out[i, :, : s.size] = s, c
        return starts, out

    def _pick(
        self, jobs: IntArray, starts: FloatArray, costs: FloatArray, remaining: IntArray | None,
    ) -> tuple[IntArray, FloatArray]:
        """The policy's choice on a cube of exact candidates: region and start per job."""
        ok = None
        if remaining is not None:
            steps = np.minimum(self.grid.step_index(starts), self.grid.n_steps - 1)
            ok = (remaining[:, steps] > 0).transpose(1, 0, 2)
        r, s = self.policy.choose(costs, ok, jobs=jobs, regions=self.grid.regions)
        chosen = starts[np.arange(jobs.size), np.maximum(s, 0)]
        return r, np.where(r >= 0, chosen, np.nan)

    def _means(self, jobs: IntArray, starts: FloatArray) -> FloatArray:
        """Mean intensity ``[J, R, S]`` each run would see, as the decision knows it: actual
        values (oracle), or the nowcast and the forecast issued in the job's first step."""
        grid, n_regions = self.grid, len(self.grid.regions)
        runtime = self.win.runtime[jobs][:, None, None]
        if self.forecast == "oracle":
            rows = np.arange(n_regions)[None, :, None]
            return integral.mean_intensity(grid.start_s, grid.step_s, grid.values, grid.cum,
                                           starts[:, None, :], runtime, rows)
        issue = self.win.first[jobs]
        uniq, inverse = np.unique(issue, return_inverse=True)
        ends = grid.step_index(starts.max(axis=1) + self.win.runtime[jobs] - integral.EDGE_S)
        horizon = int((ends - issue).max()) + 1
        values = predict(grid.values, uniq, horizon, self.forecast, grid.step_s).reshape(uniq.size * n_regions, horizon)
        rows = inverse[:, None, None] * n_regions + np.arange(n_regions)[None, :, None]
        # Each issue's forecast starts at its own step: measure time from there.
        rel = starts - issue[:, None] * float(grid.step_s)
        return integral.mean_intensity(grid.start_s, grid.step_s, values, integral.cumulative(values, grid.step_s),
                                       rel[:, None, :], runtime, rows)


def _cells_positions(cell: IntArray) -> IntArray:
    """For each entry, how many earlier entries share its cell (arrival order)."""
    order = np.argsort(cell, kind="stable")
    sc = cell[order]
    idx = np.arange(cell.size)
    new = np.ones(cell.size, dtype=bool)
    new[1:] = sc[1:] != sc[:-1]
    group_start = np.maximum.accumulate(np.where(new, idx, 0))
    pos = np.empty(cell.size, dtype=np.int64)
    pos[order] = idx - group_start
    return pos


def place_with_capacity(decide: Decide, n_jobs: int, capacity: IntArray, n_steps: int, block: int = 4096) -> Choice:
    """Greedy placement in arrival order with at most ``capacity[r]`` starts per (region,
    step): exactly what deciding one job at a time would give, in few vectorised rounds.

    Each round decides a block of jobs against the cells still free; claims are granted in
    arrival order, and the round commits the jobs before the first claim that no longer
    fits (each of those still got its most preferred free cell, since earlier jobs only take
    cells away). Jobs with no free cell left get ``NO_CHOICE``.
    """
    remaining = np.repeat(capacity.astype(np.int64)[:, None], n_steps, axis=1)
    flat = remaining.ravel()
    region = np.full(n_jobs, NO_CHOICE, dtype=np.int64)
    step = np.full(n_jobs, NO_CHOICE, dtype=np.int64)
    start = np.full(n_jobs, np.nan)
    lo = 0
    while lo < n_jobs:
        jobs = np.arange(lo, min(n_jobs, lo + block), dtype=np.int64)
        r, t, s = decide(jobs, remaining)
        ok = r >= 0
        cell = np.where(ok, r * n_steps + t, -1)
        over = ok & (_cells_positions(cell) >= flat[np.maximum(cell, 0)])
        k = int(np.argmax(over)) if over.any() else jobs.size
        region[lo: lo + k], step[lo: lo + k], start[lo: lo + k] = r[:k], t[:k], s[:k]
        np.subtract.at(flat, cell[:k][ok[:k]], 1)
        lo += k
    return region, step, start
