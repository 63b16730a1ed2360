"""Carbon data benchmark: load all 64 Electricity Maps zone-years, then answer 100 000 queries.

Prints: first parse (CSV) time, cached load time per zone-year (target < 50 ms), and the
time for 100 000 window-mean queries (scalar API calls) plus the vectorised window mean
used by the simulator. Start-time searches are measured by ``benchmarks/schedule.py``.

    .venv/bin/python benchmarks/carbon.py [--queries 100000] [--home DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.store import CarbonStore

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--home", type=Path, default=None, help="cache home (default: a fresh temp dir)")
    args = ap.parse_args()
    shared = Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared"))
    folder = shared / "carbon" / "electricitymaps_greendcc"
    files = sorted(folder.glob("*_hourly.csv"))
    home = args.home or Path(tempfile.mkdtemp(prefix="gg-carbon-bench-"))
    store = CarbonStore(home)
    print(f"{len(files)} Electricity Maps zone-year files from {folder}")

    t = time.perf_counter()
    for f in files:
        store.load(f)
    cold = time.perf_counter() - t
    print(f"first parse (CSV -> cache): {cold:.2f} s total, {cold / len(files) * 1000:.1f} ms per zone-year")

    per_file = []
    for f in files:
        t = time.perf_counter()
        store.load(f)
        per_file.append(time.perf_counter() - t)
    print(f"cached load per zone-year: median {statistics.median(per_file) * 1000:.2f} ms, "
          f"max {max(per_file) * 1000:.2f} ms (target < 50 ms)")

    for f in files:
        store.register(f)
    t = time.perf_counter()
    provider = DatasetProvider(store, forecast="oracle")
    zones = sorted({f.name.split("_")[0] for f in files})
    series: dict[str, IntensitySeries] = {z: provider.full(z) for z in zones}
    print(f"assemble {len(zones)} zones x 4 years (cached): {(time.perf_counter() - t) * 1000:.0f} ms")

    rng = random.Random(42)
    lo = datetime(2021, 1, 1, tzinfo=UTC).timestamp()
    hi = datetime(2024, 12, 30, tzinfo=UTC).timestamp()
    n = args.queries

    starts = [datetime.fromtimestamp(rng.uniform(lo, hi), UTC) for _ in range(n)]
    picks = [rng.choice(zones) for _ in range(n)]
    t = time.perf_counter()
    total = 0.0
    for z, s in zip(picks, starts, strict=True):
        total += series[z].mean_over(s, 1800)
    dt = time.perf_counter() - t
    print(f"{n} window means (30 min job, scalar): {dt:.2f} s, {dt / n * 1e6:.1f} us/query")

    arr = np.array([s.timestamp() for s in starts])
    t = time.perf_counter()
    for z in zones:
        series[z].mean_over_many(arr, 1800)
    dt = time.perf_counter() - t
    print(f"{n} window means x {len(zones)} zones (vectorised): {dt * 1000:.1f} ms")


if __name__ == "__main__":
    main()
