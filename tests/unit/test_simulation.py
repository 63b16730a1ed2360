"""The simulator against brute-force per-job computations, and its invariants on real data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.forecast import forecast
from greengrader.carbon.store import CarbonStore
from greengrader.errors import ConfigError, SimulationError
from greengrader.scheduling.policies import get_policy
from greengrader.simulation.engine import (
    J_PER_KWH,
    PolicyDecider,
    SimulationConfig,
    Windows,
    place_with_capacity,
    simulate,
)
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.metrics import to_dict
from greengrader.simulation.traces import ArrivalModel, Trace

US = {"us-west": "US-CAL-CISO", "us-central": "US-TEX-ERCO", "us-east": "US-MIDA-PJM",
      "us-northeast": "US-NY-NYIS", "ca-central": "CA-ON"}
H = 3600.0


@pytest.fixture(scope="module")
def real_grid(carbon_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> CarbonGrid:
    store = CarbonStore(tmp_path_factory.mktemp("home"))
    for zone in US.values():
        store.register(carbon_dir / "electricitymaps_greendcc" / f"{zone}_2023_hourly.csv")
    provider = DatasetProvider(store)
    return CarbonGrid.load(provider, US, datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 4, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def real_trace(real_grid: CarbonGrid) -> Trace:
    return ArrivalModel(start=datetime(2023, 3, 13, 7, tzinfo=UTC), count=300, seed=3).generate()


def small_grid(seed: int = 0, regions: int = 3, steps: int = 60) -> CarbonGrid:
    rng = np.random.default_rng(seed)
    values = rng.integers(50, 500, size=(regions, steps)).astype(float)
    names = tuple(f"r{i}" for i in range(regions))
    return CarbonGrid(names, names, 1_700_000_000.0 - 1_700_000_000.0 % 3600, 3600, values)


def small_trace(grid: CarbonGrid, n: int = 40, seed: int = 0, long_runs: bool = True) -> Trace:
    rng = np.random.default_rng(seed)
    arrival = grid.start_s + rng.uniform(0, 30 * H, n)
    arrival[:3] = grid.start_s + np.array([0, 5 * H, 7 * H])  # some exactly on a boundary
    runtime = rng.uniform(5, 600, n)
    if long_runs:
        runtime[::7] = rng.uniform(H, 2.5 * H, runtime[::7].size)  # runs spanning 2-3 steps
    return Trace.build(arrival, runtime)


# -- brute force ----------------------------------------------------------------------------

def exact_mean(grid: CarbonGrid, r: int, start: float, d: float) -> float:
    """Mean actual intensity over [start, start + d): each step weighted by its seconds."""
    total, t, end = 0.0, start, start + d
    while t < end - 1e-9:
        k = int((t - grid.start_s) // 3600)
        nxt = min(end, grid.start_s + (k + 1) * 3600)
        total += float(grid.values[r, k]) * (nxt - t)
        t = nxt
    return total / d


def brute_force(trace: Trace, grid: CarbonGrid, policy: str, slack_s: float, watts: float = 5.0) -> tuple[float, list[tuple[int, float]]]:
    """Plain-Python per-job reference: (total gCO2, [(region, start)])."""
    total, picks = 0.0, []
    n_r = len(grid.regions)
    for j in range(len(trace)):
        a, d = float(trace.arrival_s[j]), float(trace.runtime_s[j])
        h = int((a - grid.start_s) // 3600)
        last = int((a + slack_s - grid.start_s) // 3600)
        span = max(1, math.ceil(d / 3600 - 1e-9))

        def cost(r: int, t: int, span: int = span) -> float:
            return sum(float(grid.values[r, t + i]) for i in range(span)) / span

        if policy == "spatio-temporal":
            _, r, t = min((cost(r, t), r, t) for t in range(h, last + 1) for r in range(n_r))
        elif policy == "carbon-optimal":
            _, r, t = min((cost(r, h), r, h) for r in range(n_r))
        elif policy == "worst":
            _, r, t = min((-cost(r, h), r, h) for r in range(n_r))
        elif policy == "static":
            r, t = 1, h
        elif policy == "round-robin":
            r, t = j % n_r, h
        else:
            raise AssertionError(policy)
        start = a if t == h else grid.start_s + t * 3600
        picks.append((r, start))
        total += d * watts / J_PER_KWH * exact_mean(grid, r, start, d)
    return total, picks


@pytest.mark.parametrize("slack_h", [0, 1, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_small_traces_equal_brute_force(slack_h: int, seed: int) -> None:
    grid = small_grid(seed)
    trace = small_trace(grid, seed=seed)
    policies = ("static", "round-robin", "worst", "carbon-optimal", "spatio-temporal")
    cfg = SimulationConfig(policies=policies, slack_s=slack_h * H, forecasts=("oracle",), static_region=1)
    result = simulate(trace, grid, cfg)
    for policy in policies:
        run = result.run(policy)
        total, picks = brute_force(trace, grid, policy, slack_h * H)
        assert run.total_g == pytest.approx(total, rel=1e-12), policy
        assert list(run.region) == [p[0] for p in picks], policy
        assert run.start_s.tolist() == pytest.approx([p[1] for p in picks]), policy
        # Emissions are energy x intensity, checked independently of the engine's arrays.
        kwh = trace.runtime_s * 5.0 / J_PER_KWH
        assert run.emissions_g == pytest.approx(kwh * run.intensity)


def test_random_policy_matches_the_kernel_one_job_at_a_time() -> None:
    grid = small_grid(4)
    trace = small_trace(grid, seed=4)
    run = simulate(trace, grid, SimulationConfig(policies=("random",), forecasts=("oracle",), seed=9)).run("random")
    policy = get_policy("random", seed=9)
    one_by_one = [int(policy.choose(np.zeros((1, 3, 1)), jobs=[j])[0][0]) for j in range(len(trace))]
    assert run.region.tolist() == one_by_one
    assert len(set(one_by_one)) == 3


def test_forecast_runs_decide_on_what_was_known_then() -> None:
    grid = small_grid(2, steps=120)
    trace = Trace.build(grid.start_s + np.linspace(50 * H, 90 * H, 25) + 1234.0, 120.0)
    slack = 6 * H
    cfg = SimulationConfig(policies=("spatio-temporal",), slack_s=slack, forecasts=("oracle", "persistence", "seasonal-day"),
                           forecast_margin=0.0)
    result = simulate(trace, grid, cfg)
    series = [IntensitySeries(z, grid.start, 3600, grid.values[i]) for i, z in enumerate(grid.zones)]
    for method in ("persistence", "seasonal-day"):
        run = result.run("spatio-temporal", method)
        for j in range(len(trace)):
            at = datetime.fromtimestamp(float(trace.arrival_s[j]), UTC)
            fc = [forecast(s, at, int(slack) + 3600, method) for s in series]
            h = int((trace.arrival_s[j] - grid.start_s) // 3600)
            # The forecast starts at the step in progress; starts h .. h + 6.
            costs = [(float(f.values[k]), r, k) for k in range(7) for r, f in enumerate(fc)]
            _, r, k = min(costs)
            assert run.region[j] == r, (method, j)
            expected_start = trace.arrival_s[j] if k == 0 else grid.start_s + (h + k) * 3600
            assert run.start_s[j] == pytest.approx(expected_start)
            assert run.intensity[j] == pytest.approx(exact_mean(grid, r, float(run.start_s[j]), 120.0))


@pytest.mark.parametrize("method", ["persistence", "seasonal-day", "blend", "ridge"])
def test_forecast_runs_of_multi_hour_jobs_cannot_see_a_drop_after_the_decision(method: str) -> None:
    # Region 1 is dearer than region 0 until a steep drop 2 h after the job arrives; a 3 h
    # job (covering the drop when run at once) must not be sent there by any forecast,
    # since nothing known at decision time shows the drop. The oracle sees it.
    steps = 24 * 10
    values = np.vstack([np.full(steps, 300.0), np.full(steps, 310.0)])
    arrive = 24 * 9 + 5
    values[1, arrive + 2:] = 5.0
    grid = CarbonGrid(("a", "b"), ("A", "B"), 1_700_000_000.0 - 1_700_000_000.0 % 3600, 3600, values)
    trace = Trace.build(np.array([grid.start_s + arrive * H + 60.0]), 3 * H)
    cfg = SimulationConfig(policies=("carbon-optimal",), forecasts=("oracle", method))
    result = simulate(trace, grid, cfg)
    assert result.run("carbon-optimal").region[0] == 1
    assert result.run("carbon-optimal", method).region[0] == 0


def test_capacity_limited_equals_deciding_one_job_at_a_time() -> None:
    grid = small_grid(5, regions=3, steps=80)
    trace = small_trace(grid, n=120, seed=5, long_runs=False)
    slack = 4 * H
    win = Windows.of(trace, grid, slack, True)
    cap = np.array([2, 1, 3])
    for name in ("spatio-temporal", "carbon-optimal", "static", "round-robin"):
        decider = PolicyDecider(get_policy(name, static_region=0), "oracle", grid, win)
        region, step = place_with_capacity(decider, len(trace), cap, grid.n_steps, block=16)
        remaining = np.repeat(cap[:, None], grid.n_steps, axis=1)
        for j in range(len(trace)):
            r, t = decider(np.array([j]), remaining)
            assert (region[j], step[j]) == (r[0], t[0]), (name, j)
            if r[0] >= 0:
                remaining[r[0], t[0]] -= 1
        placed = region >= 0
        cells = np.bincount(region[placed] * grid.n_steps + step[placed], minlength=3 * grid.n_steps)
        assert np.all(cells.reshape(3, -1) <= cap[:, None])


def test_capacity_metrics_and_limits() -> None:
    grid = small_grid(6)
    trace = small_trace(grid, n=90, seed=6, long_runs=False)
    result = simulate(trace, grid, SimulationConfig(slack_s=3 * H, forecasts=("oracle",), capacity=(2,)))
    free = result.run("spatio-temporal")
    limited = result.run("spatio-temporal", capacity_limited=True)
    assert free.metrics["capacity_violations"] > 0
    assert limited.metrics["capacity_violations"] == 0
    assert limited.total_g >= free.total_g


# -- invariants on real data ----------------------------------------------------------------

def test_oracle_is_below_every_policy_on_real_data(real_grid: CarbonGrid, real_trace: Trace) -> None:
    for slack_h in (0, 6, 24):
        result = simulate(real_trace, real_grid, SimulationConfig(slack_s=slack_h * H, static_region="us-west"))
        oracle = result.run("spatio-temporal").total_g
        for run in result.runs:
            assert oracle <= run.total_g + 1e-12, (slack_h, run.label)
        assert result.run("worst").metrics["pct_vs_static"] > 0


def test_spatio_temporal_beats_spatial_with_slack(real_grid: CarbonGrid, real_trace: Trace) -> None:
    result = simulate(real_trace, real_grid, SimulationConfig(slack_s=24 * H, forecasts=("oracle",)))
    st, co = result.run("spatio-temporal"), result.run("carbon-optimal")
    assert st.total_g < co.total_g
    assert st.metrics["delay_mean_s"] > 0 and st.metrics["delay_p95_s"] <= 24 * H
    assert co.metrics["delay_mean_s"] == 0
    assert st.metrics["share_of_oracle_savings"] == pytest.approx(1.0)
    assert st.metrics["deadline_misses"] == 0


def test_json_document(real_grid: CarbonGrid, real_trace: Trace) -> None:
    result = simulate(real_trace, real_grid, SimulationConfig(slack_s=H))
    doc = to_dict(result, "America/Los_Angeles")
    assert sum(doc["trace"]["per_hour"]) == len(real_trace)
    assert sum(doc["trace"]["per_date"].values()) == len(real_trace)
    assert set(doc["carbon"]["intensity_by_utc_hour"]) == set(US)
    labels = [r["label"] for r in doc["runs"]]
    assert "spatio-temporal [persistence]" in labels and "static" in labels
    static = next(r for r in doc["runs"] if r["label"] == "static")
    assert sum(static["share"].values()) == pytest.approx(1.0)


def test_trace_outside_the_data_is_a_clear_error(real_grid: CarbonGrid) -> None:
    trace = ArrivalModel(start=datetime(2024, 1, 1, tzinfo=UTC), count=5).generate()
    with pytest.raises(SimulationError, match="not inside the carbon data"):
        simulate(trace, real_grid)
    with pytest.raises(ConfigError):
        SimulationConfig(forecasts=("persistence",))
    late = trace.shifted((real_grid.start - trace.start).total_seconds() + 3 * 86400)
    assert late.start == trace.start + (real_grid.start - trace.start) + timedelta(days=3)
