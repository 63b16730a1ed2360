"""Per-run figures (emissions, % against baselines, delay, deadlines, capacity) and the
JSON document ``greengrader simulate --json`` prints and ``greengrader report`` reads."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from greengrader.simulation.runs import Run, SimulationResult
from greengrader.simulation.traces import Trace

IntArray = npt.NDArray[np.int64]
SCHEMA = "greengrader.simulation/1"


def pct(value: float, reference: float) -> float | None:
    """Change of ``value`` against ``reference`` in % (negative = lower)."""
    if reference == 0:
        return None
    return (value - reference) / reference * 100.0


def capacity_violations(run: Run, first_step: float, step_s: int, capacity: IntArray) -> int:
    """Jobs started in a (region, step) cell beyond its capacity."""
    n_regions = capacity.size
    step = np.floor((run.start_s - first_step) / step_s).astype(np.int64)
    cell = step * n_regions + run.region
    uniq, counts = np.unique(cell, return_counts=True)
    over = counts - capacity[uniq % n_regions]
    return int(over[over > 0].sum())


def add_metrics(result: SimulationResult, capacity: IntArray | None) -> None:
    """Fill ``run.metrics`` for every run of ``result``."""
    trace, regions = result.trace, result.grid.regions
    for run in result.runs:
        base = {b: _total(result, b, run.capacity_limited) for b in ("static", "random", "worst")}
        oracle = _total(result, "spatio-temporal", run.capacity_limited)
        spatial = _total(result, "carbon-optimal", run.capacity_limited)
        delay = run.start_s - trace.arrival_s
        finish = run.start_s + trace.runtime_s
        due = ~np.isnan(trace.deadline_s) & (trace.arrival_s <= trace.deadline_s)
        share = np.bincount(run.region, minlength=len(regions)) / len(trace)
        total = run.total_g
        saved_by_oracle = base["static"] - oracle
        run.metrics = {
            "label": run.label,
            "policy": run.policy,
            "forecast": run.forecast,
            "capacity_limited": run.capacity_limited,
            "jobs": len(trace),
            "total_g": total,
            "mean_intensity": float(run.intensity.mean()),
            "pct_vs_static": pct(total, base["static"]),
            "pct_vs_random": pct(total, base["random"]),
            "pct_vs_worst": pct(total, base["worst"]),
            "share_of_oracle_savings": (base["static"] - total) / saved_by_oracle
            if saved_by_oracle > 0 else None,
            "share_of_oracle_extra": share_of_extra(total, spatial, oracle),
            "saved_vs_static_g": base["static"] - total,
            "delay_mean_s": float(delay.mean()),
            "delay_p95_s": float(np.percentile(delay, 95)),
            "deadline_misses": int(np.count_nonzero(due & (finish > trace.deadline_s))),
            "share": {name: float(share[i]) for i, name in enumerate(regions)},
            "capacity_violations": None if capacity is None
            else capacity_violations(run, result.grid.start_s, result.grid.step_s, capacity),
            "seconds": run.seconds,
        }


def share_of_extra(total: float, spatial: float, oracle: float) -> float | None:
    """Share of the oracle's extra saving over spatial-now that a run captures:
    ``(spatial - total) / (spatial - oracle)`` (1 = all of what slack makes possible, 0 = no
    better than placing now, negative = worse than placing now); None without any extra."""
    extra = spatial - oracle
    if extra <= 1e-12 * max(abs(spatial), 1.0):
        return None
    return (spatial - total) / extra


def _total(result: SimulationResult, policy: str, limited: bool) -> float:
    return result.run(policy, "oracle", limited).total_g


def trace_histograms(trace: Trace, tz: str = "UTC") -> dict[str, Any]:
    """Submissions per local date and per local hour of day."""
    zone = ZoneInfo(tz)
    local = [datetime.fromtimestamp(float(a), UTC).astimezone(zone) for a in trace.arrival_s]
    per_date = Counter(t.date().isoformat() for t in local)
    per_hour = np.bincount([t.hour for t in local], minlength=24)
    return {
        "tz": tz,
        "per_date": dict(sorted(per_date.items())),
        "per_hour": [int(x) for x in per_hour],
    }


def to_dict(result: SimulationResult, tz: str = "UTC") -> dict[str, Any]:
    """The JSON document of a simulation (figures only, no per-job arrays)."""
    trace, grid = result.trace, result.grid
    by_hour = grid.mean_by_hour_of_day(float(trace.arrival_s[0]), float(trace.arrival_s[-1]) + 86_400)
    config = asdict(result.config)
    config["capacity"] = list(result.config.capacity) if result.config.capacity else None
    return {
        "schema": SCHEMA,
        "config": config,
        "seconds": result.seconds,
        "trace": {
            "source": trace.source,
            "jobs": len(trace),
            "start": trace.start.isoformat(),
            "end": trace.end.isoformat(),
            "runtime_mean_s": float(trace.runtime_s.mean()),
            "assignments": list(trace.assignments),
            **trace_histograms(trace, tz),
        },
        "carbon": {
            "regions": list(grid.regions),
            "zones": list(grid.zones),
            "sources": list(grid.sources),
            "start": grid.start.isoformat(),
            "end": grid.end.isoformat(),
            "step_s": grid.step_s,
            # Mean intensity per UTC hour of day over the trace's span (+1 day of slack).
            "intensity_by_utc_hour": {
                name: [None if math.isnan(v) else float(v) for v in by_hour[i]]
                for i, name in enumerate(grid.regions)
            },
        },
        "runs": [run.metrics for run in result.runs],
    }
