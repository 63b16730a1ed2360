"""Online placement on the real hourly data in ../shared/carbon: the policies keep their
promises against brute force, capacity and queue awareness skip or penalise regions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.store import CarbonStore
from greengrader.errors import SchedulingError
from greengrader.regions.registry import Region, load_regions
from greengrader.scheduling.placement import Placer
from greengrader.scheduling.policies import get_policy
from greengrader.scheduling.types import PlacementRequest, RegionLoad

REGIONS = list(load_regions())
T0 = datetime(2023, 1, 3, 0, 0, tzinfo=UTC)
# 40 decision times spread over 2023, at odd minutes so runs straddle hour boundaries.
TIMES = [T0 + timedelta(hours=int(h), minutes=37) for h in np.linspace(0, 24 * 350, 40)]
RUNTIME = 1800.0


@pytest.fixture(scope="module")
def provider(carbon_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetProvider:
    home = tmp_path_factory.mktemp("placement-home")
    return DatasetProvider(CarbonStore(home, carbon_dir / "electricitymaps_greendcc"), forecast="oracle")


def placer(provider: DatasetProvider, policy: str, regions: list[Region] = REGIONS, **kw: object) -> Placer:
    return Placer(get_policy(policy, static_region="us-west"), provider, regions, **kw)  # type: ignore[arg-type]


def true_mean(provider: DatasetProvider, region: Region, start: datetime, runtime_s: float) -> float:
    series = provider.series(region.zone, start - timedelta(hours=1), start + timedelta(hours=2, seconds=runtime_s))
    return series.mean_over(start, runtime_s)


def test_carbon_optimal_picks_the_true_minimum(provider: DatasetProvider) -> None:
    p = placer(provider, "carbon-optimal")
    for t in TIMES:
        placement = p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t)
        truth = {r.name: true_mean(provider, r, t, RUNTIME) for r in REGIONS}
        assert placement.start == t
        assert placement.region == min(truth, key=lambda n: truth[n])
        assert placement.intensity == pytest.approx(truth[placement.region])
        assert placement.expected_g == pytest.approx(placement.energy_kwh * truth[placement.region])


@pytest.mark.parametrize("max_delay_h", [1, 6, 24])
def test_spatio_temporal_respects_max_delay_and_beats_spatial_with_foresight(
    provider: DatasetProvider, max_delay_h: int
) -> None:
    spatial, temporal = placer(provider, "carbon-optimal"), placer(provider, "spatio-temporal")
    gained = 0
    for t in TIMES:
        req = PlacementRequest(earliest=t, runtime_s=RUNTIME, max_delay_s=max_delay_h * 3600)
        a, b = spatial.place(req, t), temporal.place(req, t)
        assert t <= b.start <= t + timedelta(hours=max_delay_h)
        realised = true_mean(provider, next(r for r in REGIONS if r.name == b.region), b.start, RUNTIME)
        assert realised == pytest.approx(b.intensity)
        assert b.intensity <= a.intensity + 1e-9
        gained += b.intensity < a.intensity - 1e-9
    assert gained > 0  # slack really is used somewhere over the year


def test_spatio_temporal_matches_brute_force_over_hour_starts(provider: DatasetProvider) -> None:
    t = TIMES[7]
    b = placer(provider, "spatio-temporal").place(
        PlacementRequest(earliest=t, runtime_s=RUNTIME, max_delay_s=6 * 3600), t)
    starts = [t] + [t.replace(minute=0) + timedelta(hours=k) for k in range(1, 7)]
    brute = min(true_mean(provider, r, s, RUNTIME) for r in REGIONS for s in starts)
    assert b.intensity == pytest.approx(brute)


def test_deadline_caps_the_window(provider: DatasetProvider) -> None:
    p = placer(provider, "spatio-temporal")
    for t in TIMES[:10]:
        deadline = t + timedelta(hours=2)
        b = p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME, max_delay_s=24 * 3600, deadline=deadline), t)
        assert b.start + timedelta(seconds=RUNTIME) <= deadline


def test_capacity_fallback_takes_the_next_best(provider: DatasetProvider) -> None:
    t = TIMES[3]
    p = placer(provider, "carbon-optimal")
    free = p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t)
    ranked = sorted(free.candidates.values(), key=lambda c: c.intensity or np.inf)
    best, second = ranked[0].region, ranked[1].region
    capacity = {r.name: r.capacity for r in REGIONS}
    full = {best: RegionLoad(queued=capacity[best], running=0)}
    fallback = p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t, full)
    assert fallback.region == second
    assert fallback.candidates[best].why_not == "no free worker slot"
    assert "skipped" in fallback.reason and best in fallback.reason
    tainted = [replace(r, untainted_nodes=0) if r.name == best else r for r in REGIONS]
    assert placer(provider, "carbon-optimal", tainted).place(
        PlacementRequest(earliest=t, runtime_s=RUNTIME), t).region == second
    # Every region full: nobody is skipped, the queue wait decides.
    all_full = {r.name: RegionLoad(queued=r.capacity) for r in REGIONS}
    assert p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t, all_full).region == best
    for policy in ("static", "round-robin", "random", "worst"):
        for region in REGIONS:
            choice = placer(provider, policy).place(
                PlacementRequest(earliest=t, runtime_s=RUNTIME, job=7), t,
                {region.name: RegionLoad(running=region.capacity)})
            assert choice.region != region.name


def test_with_every_region_full_a_job_queues_in_the_green_region_only_within_its_slack(
    provider: DatasetProvider,
) -> None:
    """Deadline night: every slot busy, the greenest region's queue five runs deep, the
    others one. Without slack the job goes where it starts soonest (a green queue must not
    leave other slots idle); with slack enough to cover that queue it waits in line there."""
    t = TIMES[3]
    p = placer(provider, "carbon-optimal", queue_wait_penalty=0.0)
    best = p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t).region
    loads = {r.name: RegionLoad(queued=r.capacity * (5 if r.name == best else 1)) for r in REGIONS}
    for slack_h, where_best in ((0, False), (1, False), (6, True)):
        req = PlacementRequest(earliest=t, runtime_s=RUNTIME, max_delay_s=slack_h * 3600, job=3)
        one = p.place(req, t, loads)
        assert (one.region == best) is where_best, (slack_h, one.region)
        assert p.place_many([req], t, loads)[0].region == one.region  # the batch path agrees
        if not where_best:
            assert "longer than the allowed delay" in (one.candidates[best].why_not or "")


def test_no_viable_region_raises(provider: DatasetProvider) -> None:
    tainted = [replace(r, untainted_nodes=0) for r in REGIONS]
    with pytest.raises(SchedulingError, match="no viable candidate"):
        placer(provider, "carbon-optimal", tainted).place(PlacementRequest(earliest=T0, runtime_s=60), T0)


def test_queue_awareness_prefers_a_slightly_dirtier_idle_region(provider: DatasetProvider) -> None:
    t = TIMES[3]
    p = placer(provider, "carbon-optimal", capacity_aware=False, queue_wait_penalty=50.0)
    free = p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t)
    ranked = sorted(free.candidates.values(), key=lambda c: c.intensity or np.inf)
    best, second = ranked[0], ranked[1]
    gap = (second.intensity or 0) - (best.intensity or 0)
    cap = next(r.capacity for r in REGIONS if r.name == best.region)
    # A backlog whose wait costs more (at 50 g/kWh per hour) than the carbon gain.
    rounds = int(np.ceil(gap / 50.0 / (RUNTIME / 3600))) + 1
    loads = {best.region: RegionLoad(queued=cap * rounds)}
    assert p.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t, loads).region != best.region
    unaware = placer(provider, "carbon-optimal", capacity_aware=False, queue_aware=False)
    assert unaware.place(PlacementRequest(earliest=t, runtime_s=RUNTIME), t, loads).region == best.region


def test_batch_equals_one_by_one(provider: DatasetProvider) -> None:
    p = placer(provider, "spatio-temporal")
    now = TIMES[5]
    reqs = [PlacementRequest(earliest=now + timedelta(minutes=7 * i), runtime_s=60.0 * (1 + i % 5),
                             max_delay_s=3600.0 * (i % 4), job=i) for i in range(40)]
    batch = p.place_many(reqs, now)
    for req, got in zip(reqs, batch, strict=True):
        one = p.place(req, now)
        assert not isinstance(got, Exception)
        assert (got.region, got.start) == (one.region, one.start)
        assert got.expected_g == pytest.approx(one.expected_g)


@pytest.mark.parametrize("policy", ["spatio-temporal", "carbon-optimal", "worst", "static", "round-robin", "random"])
def test_single_decision_path_equals_the_batch_kernel(provider: DatasetProvider, policy: str) -> None:
    # place() runs in plain floats; place_many() in numpy: both must give the same decision
    # and the same explanation, with and without queue backlog.
    p = placer(provider, policy, queue_wait_penalty=80.0)
    loads = {REGIONS[0].name: RegionLoad(queued=REGIONS[0].capacity * 3), REGIONS[2].name: RegionLoad(running=1)}
    for i, t in enumerate(TIMES[:15]):
        req = PlacementRequest(earliest=t + timedelta(seconds=13 * i), runtime_s=45.0 + 400 * (i % 4),
                               max_delay_s=1800.0 * (i % 5), job=i, cores=1 + i % 3)
        for load in ({}, loads):
            one = p.place(req, t, load)
            batch = p.place_many([req], t, load)[0]
            assert not isinstance(batch, Exception)
            assert (one.region, one.start, one.expected_g) == (batch.region, batch.start, batch.expected_g)
            assert one.candidates == batch.candidates
            assert one.reason == batch.reason


class _Fixed:
    """A provider whose forecast is a fixed hourly series (the exact search in isolation)."""

    name = "fixed"

    def __init__(self, values: list[float]) -> None:
        from greengrader.carbon.base import IntensitySeries

        self.s = IntensitySeries("Z", T0, 3600, np.array(values, dtype=float))

    def series(self, zone: str, start: datetime, end: datetime) -> object:
        return self.s

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> object:
        return self.s


@pytest.mark.parametrize(
    ("values", "runtime_s", "slack_s", "start", "intensity"),
    [
        ([50, 50, 10, 100, 100, 100], 5400.0, 3 * 3600.0, T0 + timedelta(hours=1, minutes=30), 35 / 1.5),
        ([100, 10, 10, 10], 1800.0, 2700.0, T0 + timedelta(minutes=45), 55.0),
    ],
)
def test_exact_search_finds_run_ends_on_boundaries_and_the_window_end(
    values: list[float], runtime_s: float, slack_s: float, start: datetime, intensity: float
) -> None:
    region = [Region("r", "Z", 0.0, 0.0)]
    p = Placer(get_policy("spatio-temporal"), _Fixed(values), region)  # type: ignore[arg-type]
    req = PlacementRequest(earliest=T0, runtime_s=runtime_s, max_delay_s=slack_s)
    for got in (p.place(req, T0), p.place_many([req], T0)[0]):
        assert not isinstance(got, Exception)
        assert got.start == start
        assert got.intensity == pytest.approx(intensity)


class _Uncertain(_Fixed):
    """:class:`_Fixed` whose forecasts have a measured error of ``error`` at every horizon."""

    def __init__(self, values: list[float], error: float) -> None:
        super().__init__(values)
        self.error = error

    def forecast_error(self, zone: str, at: datetime, horizon_s: int) -> list[float]:
        return [0.0] + [self.error] * 48


@pytest.mark.parametrize(("error", "waits"), [(0.05, True), (0.6, False)])
def test_regret_guard_waits_only_when_the_saving_beats_the_forecast_error(error: float, waits: bool) -> None:
    # Waiting 2 h saves 20 % on the forecast: worth it with a 5 % error, not with 60 %.
    values = [100.0, 100.0, 80.0, 80.0, 80.0, 80.0]
    p = Placer(get_policy("spatio-temporal"), _Uncertain(values, error), [Region("r", "Z", 0.0, 0.0)],  # type: ignore[arg-type]
               forecast_margin=1.0)
    req = PlacementRequest(earliest=T0, runtime_s=600.0, max_delay_s=3 * 3600.0)
    one, batch = p.place(req, T0), p.place_many([req], T0)[0]
    assert not isinstance(batch, Exception)
    assert (one.start > T0) is waits and (one.start, one.reason) == (batch.start, batch.reason)
    assert ("waited" if waits else "ran now") in one.reason
    assert one.candidates["r"].forecast_error == pytest.approx(error if waits else 0.0)
