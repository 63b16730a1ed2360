"""The simulator against brute-force per-job computations, and its invariants on real data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.energy import J_PER_KWH
from greengrader.carbon.forecast import forecast
from greengrader.carbon.store import CarbonStore
from greengrader.errors import ConfigError, SimulationError
from greengrader.scheduling.policies import get_policy
from greengrader.simulation.decide import PolicyDecider, Windows, place_with_capacity
from greengrader.simulation.engine import simulate
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.metrics import to_dict
from greengrader.simulation.runs import SimulationConfig
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


def window_starts(a: float, w1: float, d: float, origin: float) -> list[float]:
    """Every start in [a, w1] where the mean over the run can be lowest: the window ends
    and each start at which the run starts or ends on an hour (built here, not by the engine)."""
    out = {a, w1}
    k = math.floor((a - origin) / H)
    while origin + k * H - d <= w1:
        for t in (origin + k * H, origin + k * H - d):
            if a < t < w1:
                out.add(t)
        k += 1
    return sorted(out)


def brute_force(
    trace: Trace, grid: CarbonGrid, policy: str, slack_s: float,
) -> list[list[tuple[float, int, float]]]:
    """Plain-Python per-job reference: each job's allowed (score, region, start) cells, best
    first (ties: lowest region, then earliest start)."""
    out = []
    n_r = len(grid.regions)
    for j in range(len(trace)):
        a, d = float(trace.arrival_s[j]), float(trace.runtime_s[j])
        if policy == "spatio-temporal":
            cells = [(exact_mean(grid, r, t, d), r, t) for t in window_starts(a, a + slack_s, d, grid.start_s)
                     for r in range(n_r)]
        elif policy == "carbon-optimal":
            cells = [(exact_mean(grid, r, a, d), r, a) for r in range(n_r)]
        elif policy == "worst":
            cells = [(-exact_mean(grid, r, a, d), r, a) for r in range(n_r)]
        elif policy == "static":
            cells = [(0.0, 1, a)]
        elif policy == "round-robin":
            cells = [(0.0, j % n_r, a)]
        else:
            raise AssertionError(policy)
        out.append(sorted(cells))
    return out


def assert_best_cells(run_region: list[int], run_start: list[float], cells: list[list[tuple[float, int, float]]],
                      label: str) -> None:
    """Each job got a cell as good as the best (the best itself when no other is within
    rounding of it)."""
    for j, options in enumerate(cells):
        best = options[0][0]
        mine = [c for c in options if c[1] == run_region[j] and c[2] == pytest.approx(run_start[j], abs=1e-6)]
        assert mine and mine[0][0] <= best + 1e-9 * max(1.0, abs(best)), (label, j, options[:3], mine)
        if len(options) == 1 or options[1][0] > best + 1e-9 * max(1.0, abs(best)):
            assert run_region[j] == options[0][1], (label, j)
            assert run_start[j] == pytest.approx(options[0][2]), (label, j)


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
        assert_best_cells(run.region.tolist(), run.start_s.tolist(), brute_force(trace, grid, policy, slack_h * H), policy)
        # Charges are the exact mean over the run and energy x intensity, checked
        # independently of the engine's arrays.
        charged = [exact_mean(grid, int(r), float(t), float(d))
                   for r, t, d in zip(run.region, run.start_s, trace.runtime_s, strict=True)]
        assert run.intensity.tolist() == pytest.approx(charged, rel=1e-12)
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
    trace = small_trace(grid, n=120, seed=5)  # long runs too: decided on exact candidates
    slack = 4 * H + 1000.0
    win = Windows.of(trace, grid, slack, True)
    cap = np.array([2, 1, 3])
    runs = [(name, "oracle") for name in ("spatio-temporal", "carbon-optimal", "static", "round-robin")]
    for name, method in [*runs, ("spatio-temporal", "seasonal-day")]:
        decider = PolicyDecider(get_policy(name, static_region=0), method, grid, win, margin=0.25)
        region, step, start = place_with_capacity(decider, len(trace), cap, grid.n_steps, block=16)
        remaining = np.repeat(cap[:, None], grid.n_steps, axis=1)
        for j in range(len(trace)):
            r, t, s = decider(np.array([j]), remaining)
            assert (region[j], step[j]) == (r[0], t[0]), (name, method, j)
            assert start[j] == s[0] or math.isnan(s[0]), (name, method, j)
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


# -- exact start times ------------------------------------------------------------------------

def daily_grid(hours: list[float], regions: int = 1, days: int = 3) -> CarbonGrid:
    """``hours`` (padded to a day with the last value) repeated for ``days`` days in each
    region (region k scaled by k + 1): a day-ahead forecast of it is exact."""
    day = np.array([*hours, *[hours[-1]] * (24 - len(hours))], dtype=float)
    values = np.vstack([np.tile(day, days) * (k + 1) for k in range(regions)])
    names = tuple(f"r{k}" for k in range(regions))
    return CarbonGrid(names, names, 1_700_000_000.0 - 1_700_000_000.0 % 86_400, 3600, values)


@pytest.mark.parametrize(
    ("hours", "runtime_s", "slack_s", "start_h", "mean"),
    [
        # The run may end on a boundary: 01:30 -> 03:00 at (0.5 x 50 + 10) / 1.5, not 01:00 at 36.7.
        ([50, 50, 10, 100], 5400.0, 3 * H, 1.5, 35 / 1.5),
        # The window end itself: 00:45 -> 01:15 at (100 + 10) / 2, not now at 100.
        ([100, 10], 1800.0, 2700.0, 0.75, 55.0),
    ],
)
@pytest.mark.parametrize("forecast", ["oracle", "seasonal-day"])
@pytest.mark.parametrize("capacity", [None, (5.0,)])
def test_the_simulator_picks_the_exact_optimum(
    hours: list[float], runtime_s: float, slack_s: float, start_h: float, mean: float, forecast: str,
    capacity: tuple[float, ...] | None,
) -> None:
    grid = daily_grid(hours)
    arrival = grid.start_s + 2 * 86_400  # on day 3: yesterday's same hours are known
    trace = Trace.build(np.array([arrival]), runtime_s)
    forecasts = tuple(dict.fromkeys(["oracle", forecast]))
    cfg = SimulationConfig(policies=("spatio-temporal",), slack_s=slack_s, forecasts=forecasts,
                           forecast_margin=0.0, capacity=capacity)
    run = simulate(trace, grid, cfg).run("spatio-temporal", forecast, capacity_limited=capacity is not None)
    assert run.start_s[0] == pytest.approx(arrival + start_h * H)
    assert run.intensity[0] == pytest.approx(mean)


@settings(max_examples=80, deadline=None)
@given(
    hours=st.lists(st.integers(0, 900), min_size=3, max_size=12),
    offset=st.integers(0, 3 * 3600),
    slack=st.integers(0, 5 * 3600),  # window ends need not be on a boundary
    runtime=st.integers(60, 3 * 3600),  # longer than a step too
)
def test_simulated_starts_are_the_brute_force_optimum(hours: list[int], offset: int, slack: int, runtime: int) -> None:
    grid = daily_grid([float(h) for h in hours], regions=2)
    a = grid.start_s + 2 * 86_400 + offset
    trace = Trace.build(np.array([a, a + 17.0]), float(runtime))
    cfg = SimulationConfig(policies=("spatio-temporal",), slack_s=float(slack), forecasts=("oracle", "seasonal-day"),
                           forecast_margin=0.0)
    result = simulate(trace, grid, cfg)
    for j in range(len(trace)):
        w0 = float(trace.arrival_s[j])
        # Every start on a fine grid (every 60 s, and the window end) in either region.
        fine = [*np.arange(w0, w0 + slack + 1e-9, 60.0).tolist(), w0 + slack]
        brute = min(exact_mean(grid, r, t, float(runtime)) for t in fine for r in range(2))
        now = min(exact_mean(grid, r, w0, float(runtime)) for r in range(2))
        for method in ("oracle", "seasonal-day"):  # a day-ahead forecast of a daily pattern is exact
            run = result.run("spatio-temporal", method)
            assert w0 <= run.start_s[j] <= w0 + slack + 1e-6
            assert run.intensity[j] <= brute + 1e-9, method
            assert run.intensity[j] == pytest.approx(exact_mean(grid, int(run.region[j]), float(run.start_s[j]), float(runtime)))
        assert result.run("carbon-optimal").intensity[j] == pytest.approx(now)


@pytest.mark.parametrize("method", ["oracle", "seasonal-day", "blend"])
def test_jobs_on_the_grid_decide_as_their_exact_candidates_would(method: str) -> None:
    # The grid kernel is a shortcut for runs that stay inside one step from either window
    # end: the exact candidate cube must make the same choice for them (the same region and
    # cost; its start may be another candidate of mathematically equal cost, such as a run
    # ending on the boundary the grid's start begins at, told apart by round-off).
    rng = np.random.default_rng(11)
    values = rng.uniform(50, 500, size=(4, 24 * 10))
    grid = CarbonGrid(("a", "b", "c", "d"), ("A", "B", "C", "D"), 1_700_000_000.0 - 1_700_000_000.0 % 3600, 3600, values)
    trace = Trace.build(grid.start_s + 24 * 8 * H + rng.uniform(0, 20 * H, 300), rng.uniform(5, 600, 300))
    win = Windows.of(trace, grid, 6 * H + 600.0, True)
    remaining = rng.integers(0, 3, size=(4, grid.n_steps))
    # Forecast runs are made for the forecast-driven policies only (see engine.plan).
    for name in ("spatio-temporal", "carbon-optimal", *(["round-robin"] if method == "oracle" else [])):
        decider = PolicyDecider(get_policy(name), method, grid, win, margin=0.25)
        jobs = np.nonzero(win.on_grid(decider.policy.temporal))[0]
        assert jobs.size > 200
        for free in (None, remaining):
            fast, exact = decider._grid(jobs, free), decider._exact(jobs, free)
            assert fast[0].tolist() == exact[0].tolist(), (name, method)
            placed = np.nonzero(fast[0] >= 0)[0]
            cost = [[exact_mean(grid, int(c[0][k]), float(c[2][k]), float(trace.runtime_s[jobs[k]])) for k in placed]
                    for c in (fast, exact)]
            assert cost[0] == pytest.approx(cost[1], rel=1e-9), (name, method)
            # Within the same step, so in the same capacity cell.
            assert fast[1].tolist() == exact[1].tolist(), (name, method)
