"""Vectorised replay of a submission trace through the scheduling policies.

Decisions come from the policies' own grid kernel
(:meth:`~greengrader.scheduling.policies.Policy.choose_grid`, perfect foresight) or cost
cube kernel (:meth:`~greengrader.scheduling.policies.Policy.choose`, forecast-driven: each
distinct decision time sees the forecast it could have known), so the simulator and the
online scheduler share one implementation of every policy.

Model (also in ``docs/simulation.md``):

- Job ``j`` arrives at ``a_j`` in grid step ``H_j`` and may start in step ``H_j`` (at once)
  or at any later step boundary up to ``a_j + slack`` (and, with deadlines respected, no
  later than its deadline minus its runtime).
- Starting at step ``t`` in region ``r`` is decided on the mean intensity over the whole
  steps the run occupies (``ceil(runtime / step)`` steps from ``t``; for runs shorter than a
  step, the intensity of the step it starts in). Decisions use that cost on actual values
  (the oracle) or on a forecast issued in step ``H_j``: the nowcast (the actual value of
  ``H_j``) for the step in progress and forecast values for every later step the run
  occupies, so nothing after ``H_j`` is seen. The start time is ``a_j`` in step ``H_j`` and
  the step boundary otherwise. Every run is charged energy x the exact mean actual
  intensity over ``[start, start + runtime)`` (:mod:`greengrader.carbon.integral`), so a
  run crossing a step boundary pays each step for the seconds it spends there.
- Energy = runtime x ``watts`` x ``pue`` (a constant-power model; percentages between
  policies do not depend on it).
- Capacity: each region starts at most ``capacity[r]`` jobs per grid step. Capacity-limited
  runs place jobs greedily in arrival order, each taking its policy's most preferred cell
  that still has room (the online scheduler's behaviour); capacity-free runs report how many
  jobs landed in cells over capacity.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from greengrader.carbon import integral
from greengrader.carbon.forecast import METHODS, predict
from greengrader.errors import ConfigError, SimulationError
from greengrader.scheduling.policies import NO_CHOICE, POLICIES, Policy, get_policy
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.traces import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[str, int, int], None]
J_PER_KWH = 3.6e6

DEFAULT_POLICIES: tuple[str, ...] = (
    "static", "random", "round-robin", "worst", "carbon-optimal", "spatio-temporal",
)
#: Policies whose decisions depend on the intensity forecast (the others ignore intensity
#: or, like ``worst``, serve as a baseline evaluated on actual values).
FORECAST_DRIVEN: tuple[str, ...] = ("carbon-optimal", "spatio-temporal")
BASELINES: tuple[str, ...] = ("static", "random", "worst")
ORACLE = "oracle"


@dataclass(frozen=True)
class SimulationConfig:
    policies: tuple[str, ...] = DEFAULT_POLICIES
    slack_s: float = 0.0
    forecasts: tuple[str, ...] = ("oracle", "persistence", "seasonal-day", "blend")
    #: Jobs each region can start per grid step (one value for all or one per region).
    capacity: tuple[float, ...] | None = None
    watts: float = 5.0
    pue: float = 1.0
    static_region: str | int = 0
    seed: int = 0
    respect_deadlines: bool = True
    #: Regret guard: a forecast-driven delay must save more than this times the forecast's
    #: measured relative error at that horizon (0 turns the guard off).
    forecast_margin: float = 0.25
    #: Jobs decided together in a capacity-limited round (a speed knob, not a semantic one).
    block: int = 4096

    def __post_init__(self) -> None:
        if self.slack_s < 0:
            raise ConfigError("slack must be >= 0")
        if self.forecast_margin < 0:
            raise ConfigError("the forecast margin must be >= 0")
        for f in self.forecasts:
            if f not in METHODS:
                raise ConfigError(f"unknown forecast {f!r} (known: {', '.join(METHODS)})")
        if "oracle" not in self.forecasts:
            raise ConfigError("the oracle forecast is always needed (it is the reference)")
        if not self.policies:
            raise ConfigError("no policies to simulate")


@dataclass
class Run:
    """One policy's outcome over the trace."""

    policy: str
    forecast: str
    capacity_limited: bool
    region: IntArray
    start_s: FloatArray
    intensity: FloatArray
    emissions_g: FloatArray
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = self.policy if self.forecast == "oracle" else f"{self.policy} [{self.forecast}]"
        return f"{name} (capacity)" if self.capacity_limited else name

    @property
    def total_g(self) -> float:
        return float(self.emissions_g.sum())


@dataclass
class SimulationResult:
    config: SimulationConfig
    trace: Trace
    grid: CarbonGrid
    runs: list[Run]
    seconds: float = 0.0

    def run(self, policy: str, forecast: str = "oracle", capacity_limited: bool = False) -> Run:
        for r in self.runs:
            if (r.policy, r.forecast, r.capacity_limited) == (policy, forecast, capacity_limited):
                return r
        raise KeyError((policy, forecast, capacity_limited))


# -- job windows -------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Windows:
    """Per job: first grid step, number of allowed starts, run length in whole steps."""

    first: IntArray
    n_starts: IntArray
    span: IntArray

    @classmethod
    def of(cls, trace: Trace, grid: CarbonGrid, slack_s: float, respect_deadlines: bool) -> Windows:
        first = grid.step_index(trace.arrival_s)
        latest = trace.arrival_s + slack_s
        if respect_deadlines:
            by_deadline = np.maximum(trace.arrival_s, trace.deadline_s - trace.runtime_s)
            latest = np.where(np.isnan(trace.deadline_s), latest, np.minimum(latest, by_deadline))
        n = grid.step_index(latest) - first + 1
        span = np.maximum(1, np.ceil(trace.runtime_s / grid.step_s - 1e-9)).astype(np.int64)
        last_step = first + n - 1 + span
        if len(trace) and (first.min() < 0 or last_step.max() > grid.n_steps):
            raise SimulationError(
                f"the trace ({trace.start:%Y-%m-%d %H:%M} .. {trace.end:%Y-%m-%d %H:%M} UTC, plus "
                f"{slack_s / 3600:g} h of slack) is not inside the carbon data "
                f"({grid.start:%Y-%m-%d %H:%M} .. {grid.end:%Y-%m-%d %H:%M} UTC)"
            )
        return cls(first, np.maximum(n, 1), span)


def decision_grid(values: FloatArray, span: int) -> FloatArray:
    """Mean intensity over ``span`` whole steps starting at each step (padded with the last
    value where the run would leave the data)."""
    if span <= 1:
        return values
    padded = np.concatenate([values, np.repeat(values[:, -1:], span - 1, axis=1)], axis=1)
    return run_means(padded, span)


def run_means(steps: FloatArray, span: int) -> FloatArray:
    """Mean over ``span`` consecutive steps along the last axis (``[..., T]`` ->
    ``[..., T - span + 1]``): the cost of a run that occupies those steps."""
    if span <= 1:
        return steps
    cum = integral.cumulative(steps, 1.0)
    out: FloatArray = (cum[..., span:] - cum[..., :-span]) / span
    return out


# -- deciding ----------------------------------------------------------------------------

#: ``decide(jobs, remaining)``: choices for ``jobs`` given the free starts per (region, step)
#: (``None``: no capacity limit).
Decide = Callable[[IntArray, "IntArray | None"], tuple[IntArray, IntArray]]


class PolicyDecider:
    """Decisions of one policy under one forecast for a subset of jobs."""

    def __init__(self, policy: Policy, forecast: str, grid: CarbonGrid, win: Windows, margin: float = 0.0) -> None:
        self.policy, self.forecast, self.grid, self.win = policy, forecast, grid, win
        self.margin = margin
        self._grids: dict[int, FloatArray] = {}

    def errors(self, horizon: int) -> FloatArray:
        """The forecast's measured relative error ``[steps, R, >= horizon]`` (regret guard)."""
        return self.grid.forecast_errors(self.forecast, horizon)

    def actual(self, span: int) -> FloatArray:
        """Actual mean intensity over ``span`` steps from each step (what a run is charged)."""
        return self._grid(span)

    def _grid(self, span: int) -> FloatArray:
        if span not in self._grids:
            self._grids[span] = decision_grid(self.grid.values, span)
        return self._grids[span]

    def __call__(self, jobs: IntArray, remaining: IntArray | None) -> tuple[IntArray, IntArray]:
        decide = self._oracle if self.forecast == "oracle" else self._forecasted
        spans = self.win.span[jobs]
        lo_span, hi_span = int(spans.min()), int(spans.max())
        if lo_span == hi_span:  # the usual case: every run shorter than a step
            return decide(jobs, lo_span, remaining)
        region = np.full(jobs.size, NO_CHOICE, dtype=np.int64)
        step = np.full(jobs.size, NO_CHOICE, dtype=np.int64)
        for span in np.unique(spans):
            sel = np.nonzero(spans == span)[0]
            region[sel], step[sel] = decide(jobs[sel], int(span), remaining)
        return region, step

    def _oracle(self, jobs: IntArray, span: int, remaining: IntArray | None) -> tuple[IntArray, IntArray]:
        g = self._grid(span)
        first, n = self.win.first[jobs], self.win.n_starts[jobs]
        lo, hi = int(first.min()), int((first + n).max())
        mask = None if remaining is None else remaining[:, lo:hi] > 0
        r, t = self.policy.choose_grid(
            g[:, lo:hi], first - lo, n, mask, jobs=jobs, regions=self.grid.regions,
        )
        return r, np.where(t >= 0, t + lo, NO_CHOICE)

    def _forecasted(self, jobs: IntArray, span: int, remaining: IntArray | None) -> tuple[IntArray, IntArray]:
        # Every job decided at the same step with the same number of starts sees the same
        # forecast cube, so decide once per distinct (first step, starts) and gather. The
        # cube holds the nowcast for the step in progress and forecast values after it, for
        # every step a run occupies: nothing after the decision step is read.
        first, n = self.win.first[jobs], self.win.n_starts[jobs]
        n_max = int(n.max())
        keys = first * (n_max + 1) + n
        uniq, inverse = np.unique(keys, return_inverse=True)
        u_first, u_n = uniq // (n_max + 1), uniq % (n_max + 1)
        target = u_first[:, None] + np.arange(n_max)[None, :]
        per_step = predict(self.grid.values, u_first, n_max + span - 1, self.forecast, self.grid.step_s)
        cube = run_means(per_step, span)
        if self.margin > 0 and self.policy.temporal:
            # A later start must beat starting now by more than the forecast's own error.
            cube = cube * (1.0 + self.margin * self.errors(n_max)[u_first, :, :n_max])
        ok = np.broadcast_to((np.arange(n_max)[None, :] < u_n[:, None])[:, None, :], cube.shape)
        tgt = np.minimum(target, self.grid.n_steps - 1)
        if remaining is not None:
            ok = ok & (remaining[:, tgt] > 0).transpose(1, 0, 2)
        r, s = self.policy.choose(cube, ok, jobs=np.zeros(uniq.size, dtype=np.int64),
                                  regions=self.grid.regions)
        steps = np.where(s >= 0, u_first + s, NO_CHOICE)
        return r[inverse], steps[inverse]


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


def place_with_capacity(
    decide: Decide, n_jobs: int, capacity: IntArray, n_steps: int, block: int = 4096,
) -> tuple[IntArray, IntArray]:
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
    lo = 0
    while lo < n_jobs:
        jobs = np.arange(lo, min(n_jobs, lo + block), dtype=np.int64)
        r, t = decide(jobs, remaining)
        ok = r >= 0
        cell = np.where(ok, r * n_steps + t, -1)
        over = ok & (_cells_positions(cell) >= flat[np.maximum(cell, 0)])
        k = int(np.argmax(over)) if over.any() else jobs.size
        region[lo: lo + k], step[lo: lo + k] = r[:k], t[:k]
        np.subtract.at(flat, cell[:k][ok[:k]], 1)
        lo += k
    return region, step


# -- the simulation ----------------------------------------------------------------------

def capacity_per_region(config: SimulationConfig, n_regions: int) -> IntArray | None:
    if config.capacity is None:
        return None
    cap = np.asarray(config.capacity, dtype=np.float64)
    if cap.size == 1:
        cap = np.full(n_regions, cap.item())
    if cap.size != n_regions or np.any(cap < 0):
        raise ConfigError(f"capacity needs one non-negative value or {n_regions} (one per region)")
    return np.floor(cap).astype(np.int64)


def _realise(
    trace: Trace, win: Windows, decider: PolicyDecider, config: SimulationConfig,
    region: IntArray, step: IntArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    grid = decider.grid
    start = np.where(step == win.first, trace.arrival_s, grid.start_s + step * float(grid.step_s))
    # Charged by the seconds the run spends in each step (a run crossing a boundary pays
    # both steps' intensity).
    intensity = integral.mean_intensity(grid.start_s, grid.step_s, grid.values, grid.cum, start,
                                        trace.runtime_s, rows=region)
    kwh = trace.runtime_s * config.watts * config.pue / J_PER_KWH
    return start, intensity, kwh * intensity


def run_policy(
    policy_name: str, forecast: str, capacity: IntArray | None, trace: Trace, grid: CarbonGrid,
    win: Windows, config: SimulationConfig,
) -> Run:
    t0 = time.perf_counter()
    policy = get_policy(policy_name, seed=config.seed, static_region=config.static_region)
    decide = PolicyDecider(policy, forecast, grid, win, config.forecast_margin)
    all_jobs = np.arange(len(trace), dtype=np.int64)
    if capacity is None:
        region, step = decide(all_jobs, None)
    else:
        region, step = place_with_capacity(decide, len(trace), capacity, grid.n_steps, config.block)
        lost = region < 0
        if lost.any():  # every allowed cell full: it runs where the policy wanted, over capacity
            region[lost], step[lost] = decide(all_jobs[lost], None)
    if np.any(region < 0):
        raise SimulationError(f"{policy_name}: some jobs have no possible placement")
    start, intensity, grams = _realise(trace, win, decide, config, region, step)
    return Run(policy_name, forecast, capacity is not None, region, start, intensity, grams,
               seconds=time.perf_counter() - t0)


def plan(config: SimulationConfig) -> list[tuple[str, str, bool]]:
    """(policy, forecast, capacity-limited) for every run the config asks for."""
    for name in config.policies:
        if name not in POLICIES and ":" not in name:
            raise ConfigError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})")
    # The baselines, spatial-now (carbon-optimal) and the oracle are the references of the metrics.
    names = list(dict.fromkeys([*BASELINES, *config.policies, "carbon-optimal", "spatio-temporal"]))
    runs = []
    for limited in ((False, True) if config.capacity is not None else (False,)):
        for name in names:
            forecasts = config.forecasts if name in FORECAST_DRIVEN else ("oracle",)
            runs += [(name, f, limited) for f in forecasts]
    return runs


def simulate(
    trace: Trace, grid: CarbonGrid, config: SimulationConfig | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Every run of :func:`plan` over ``trace`` on ``grid``, with metrics."""
    config = config or SimulationConfig()
    if len(trace) == 0:
        raise SimulationError("the trace is empty")
    t0 = time.perf_counter()
    win = Windows.of(trace, grid, config.slack_s, config.respect_deadlines)
    capacity = capacity_per_region(config, len(grid.regions))
    todo = plan(config)
    runs = []
    for i, (name, forecast, limited) in enumerate(todo):
        if progress is not None:
            progress(f"{name} [{forecast}]" + (" capacity" if limited else ""), i, len(todo))
        runs.append(run_policy(name, forecast, capacity if limited else None, trace, grid, win, config))
    if progress is not None:
        progress("done", len(todo), len(todo))
    result = SimulationResult(config, trace, grid, runs, seconds=time.perf_counter() - t0)
    from greengrader.simulation.metrics import add_metrics

    add_metrics(result, capacity)
    return result
