"""How good a forecast is for *deciding*: replays of a thesis-like year (134 submissions a
week, the same week shape every week) and the forecast error per zone and horizon.

Decision quality is the share of the oracle's extra saving over spatial-now that the
forecast-driven spatio-temporal policy captures (see
:func:`~greengrader.simulation.metrics.share_of_extra`); MAPE is measured for horizons of
1 to 24 steps ahead of the nowcast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.forecast import mape
from greengrader.simulation.engine import simulate
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.runs import SimulationConfig
from greengrader.simulation.traces import ArrivalModel, Trace

METHODS: tuple[str, ...] = ("persistence", "seasonal-day", "seasonal-week", "blend", "ridge")


@dataclass(frozen=True)
class Setup:
    name: str
    regions: Mapping[str, str]
    year: int
    static_region: str


def year_trace(year: int, tz: str = "America/Los_Angeles", per_week: int = 134, weeks: int = 51, seed: int = 0) -> Trace:
    """The thesis week shape repeated over ``weeks`` weeks from the first Monday of ``year``."""
    first = datetime(year, 1, 2, 8, tzinfo=UTC)
    parts = [
        ArrivalModel(count=per_week, start=first + timedelta(weeks=k), days=7, tz=tz, seed=seed + k).generate()
        for k in range(weeks)
    ]
    return Trace.build(np.concatenate([p.arrival_s for p in parts]), np.concatenate([p.runtime_s for p in parts]),
                       source=f"thesis-like {weeks} weeks x {per_week}")


def replay(
    setup: Setup, grid: CarbonGrid, trace: Trace, slacks_h: Sequence[float], methods: Sequence[str] = METHODS,
    **config: Any,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per slack and forecast: share of the oracle's extra, % vs static and vs spatial-now."""
    base = SimulationConfig(policies=("carbon-optimal", "spatio-temporal"), forecasts=("oracle", *methods),
                            static_region=setup.static_region, respect_deadlines=False, **config)
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for slack in slacks_h:
        result = simulate(trace, grid, replace(base, slack_s=slack * 3600.0))
        now = result.run("carbon-optimal").total_g
        rows: dict[str, dict[str, float | None]] = {}
        for method in ("oracle", *methods):
            m = result.run("spatio-temporal", method).metrics
            rows[method] = {
                "share_of_oracle_extra": m["share_of_oracle_extra"],
                "pct_vs_static": m["pct_vs_static"],
                "pct_vs_spatial_now": (m["total_g"] - now) / now * 100.0,
            }
        out[f"{slack:g}"] = rows
    return out


def mape_by_horizon(series: IntensitySeries, methods: Sequence[str] = METHODS, horizons: Sequence[int] = (1, 6, 24)) -> dict[str, dict[str, float]]:
    """MAPE (%) of each method at each horizon (steps after the nowcast)."""
    return {m: {str(h): mape(series, m, horizons=range(h, h + 1)) for h in horizons} for m in methods}
