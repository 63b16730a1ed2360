"""Vectorised replay of a submission trace through the scheduling policies.

Decisions (:mod:`greengrader.simulation.decide`) come from the policies' own kernels, so
the simulator and the online scheduler share one implementation of every policy, and they
search the same exact candidate starts (:mod:`greengrader.carbon.integral`). Perfect
foresight (the oracle) decides on actual values; a forecast run decides each job on what a
forecast issued when it arrived could know.

Model (also in ``docs/simulation.md``):

- Job ``j`` arriving at ``a_j`` may start at any time in ``[a_j, a_j + slack]`` (and, with
  deadlines respected, no later than its deadline minus its runtime). A start is priced by
  the mean intensity over the whole run; the best start is one of the window ends or a
  start where the run starts or ends on a step boundary.
- Every run is charged energy x the exact mean actual intensity over
  ``[start, start + runtime)``, so a run crossing a step boundary pays each step for the
  seconds it spends there.
- Energy = runtime x ``watts`` x ``pue`` (:func:`~greengrader.carbon.energy.run_kwh`; a
  constant-power model: percentages between policies do not depend on it).
- Capacity: each region starts at most ``capacity[r]`` jobs per grid step. Capacity-limited
  runs place jobs greedily in arrival order, each taking its policy's most preferred cell
  that still has room (the online scheduler's behaviour); capacity-free runs report how many
  jobs landed in cells over capacity.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from greengrader.carbon import integral
from greengrader.carbon.energy import run_kwh
from greengrader.errors import ConfigError, SimulationError
from greengrader.scheduling.policies import POLICIES, get_policy
from greengrader.simulation.decide import PolicyDecider, Windows, place_with_capacity
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.metrics import add_metrics
from greengrader.simulation.runs import (
    BASELINES,
    FORECAST_DRIVEN,
    Run,
    SimulationConfig,
    SimulationResult,
)
from greengrader.simulation.traces import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[str, int, int], None]


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


def _charge(
    trace: Trace, grid: CarbonGrid, config: SimulationConfig, region: IntArray, start: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Mean actual intensity of every run and its gCO2: each run pays the seconds it
    spends in each step (a run crossing a boundary pays both steps' intensity)."""
    intensity = integral.mean_intensity(grid.start_s, grid.step_s, grid.values, grid.cum, start,
                                        trace.runtime_s, rows=region)
    return intensity, run_kwh(trace.runtime_s, config.watts, config.pue) * intensity


def run_policy(
    policy_name: str, forecast: str, capacity: IntArray | None, trace: Trace, grid: CarbonGrid,
    win: Windows, config: SimulationConfig,
) -> Run:
    t0 = time.perf_counter()
    policy = get_policy(policy_name, seed=config.seed, static_region=config.static_region)
    decide = PolicyDecider(policy, forecast, grid, win, config.forecast_margin)
    all_jobs = np.arange(len(trace), dtype=np.int64)
    if capacity is None:
        region, _, start = decide(all_jobs, None)
    else:
        region, step, start = place_with_capacity(decide, len(trace), capacity, grid.n_steps, config.block)
        lost = region < 0
        if lost.any():  # every allowed cell full: it runs where the policy wanted, over capacity
            region[lost], step[lost], start[lost] = decide(all_jobs[lost], None)
    if np.any(region < 0):
        raise SimulationError(f"{policy_name}: some jobs have no possible placement")
    intensity, grams = _charge(trace, grid, config, region, start)
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
    add_metrics(result, capacity)
    return result
