"""Simulator speed: 1 M submissions x 20 regions x one year hourly, 24 h of slack.

Targets: < 0.5 s per policy run without capacity limits, < 5 s with them. The 20 regions are
the 16 Electricity Maps zones of electricitymaps_greendcc, the 3 of electricitymaps_umass_decarb
and a 20th made of the previous year of DE-LU placed on the same hours (a distinct,
realistic signal), all read through the data-set provider.

    .venv/bin/python benchmarks/simulate.py [--jobs 1000000] [--year 2023]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.store import CarbonStore
from greengrader.simulation.decide import Windows
from greengrader.simulation.engine import capacity_per_region, run_policy, simulate
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.runs import SimulationConfig
from greengrader.simulation.traces import ArrivalModel

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared"))


GREENDCC = (
    "AU-NSW", "AU-VIC", "BR-SP", "CA-ON", "CL-SIC", "DE-LU", "GB", "IN-WE", "JP-TK", "KR", "SG",
    "US-CAL-CISO", "US-MIDA-PJM", "US-NY-NYIS", "US-TEX-ERCO", "ZA",
)


def load_grid(year: int, home: Path) -> CarbonGrid:
    carbon = SHARED / "carbon"
    provider = DatasetProvider(CarbonStore(home, carbon / "electricitymaps_greendcc"))
    umass = DatasetProvider(CarbonStore(home, carbon / "electricitymaps_umass_decarb"))
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    series = [provider.series(z, start, end) for z in GREENDCC]
    series += [umass.series(z, start, end) for z in ("BR", "ES", "NO")]
    prev = provider.series("DE-LU", start.replace(year=year - 1), end.replace(year=year))
    names = [*GREENDCC, "BR", "ES", "NO", "DE-LU-prev"]
    grid = CarbonGrid.from_series(names[:-1], series)
    n = grid.n_steps
    values = np.vstack([grid.values, prev.values[:n]])
    return CarbonGrid(tuple(names), (*grid.zones, "DE-LU"), grid.start_s, grid.step_s, values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--year", type=int, default=2023)
    ap.add_argument("--capacity", type=float, default=600.0, help="jobs per region per hour")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        grid = load_grid(args.year, Path(tmp))
        print(f"carbon grid {grid.values.shape[0]} regions x {grid.values.shape[1]} h "
              f"loaded in {time.perf_counter() - t:.2f} s (first parse, no cache)")
    t = time.perf_counter()
    model = ArrivalModel(count=args.jobs, start=grid.start, days=363, deadline_every_days=7, seed=1)
    trace = model.generate()
    print(f"trace {len(trace):,} jobs generated in {time.perf_counter() - t:.2f} s")
    slack = 24 * 3600.0
    for policy in ("spatio-temporal", "carbon-optimal", "static", "random"):
        for cap in (None, (args.capacity,)):
            cfg = SimulationConfig(policies=(policy,), slack_s=slack, forecasts=("oracle",),
                                   capacity=cap, respect_deadlines=False)
            win = Windows.of(trace, grid, slack, False)
            c = capacity_per_region(cfg, len(grid.regions))
            t = time.perf_counter()
            run = run_policy(policy, "oracle", c, trace, grid, win, cfg)
            dt = time.perf_counter() - t
            label = "capacity-limited" if cap else "capacity-free   "
            print(f"{policy:16s} {label} {dt:6.3f} s  total {run.total_g / 1000:10.1f} kg")
    t = time.perf_counter()
    result = simulate(trace, grid, SimulationConfig(slack_s=slack, respect_deadlines=False))
    print(f"full simulate() (all policies, 3 forecasts, no capacity): {time.perf_counter() - t:.2f} s "
          f"for {len(result.runs)} runs")


if __name__ == "__main__":
    main()
