"""Reproducible experiments built on the simulator.

``thesis``: the original evaluation's setup (134 submissions to one assignment in one
week, busiest 18-21 h local time, 23.4 s container runtime, US regions, static = us-west)
replayed on real hourly Electricity Maps data, with 0, 1, 6 and 24 h of slack, and the same
week shape repeated over every week of the year to show how much the chosen week matters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from greengrader.carbon.base import CarbonProvider
from greengrader.carbon.forecast import DEFAULT_METHOD
from greengrader.simulation.engine import simulate
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.metrics import to_dict
from greengrader.simulation.runs import SimulationConfig
from greengrader.simulation.traces import ArrivalModel

#: The thesis's figures for carbon-optimal placement (spatial only, no slack).
THESIS = {"pct_vs_static": -40.91, "pct_vs_random": -35.76, "pct_vs_worst": -48.03}
US_REGIONS: dict[str, str] = {
    "us-west": "US-CAL-CISO", "us-central": "US-TEX-ERCO", "us-east": "US-MIDA-PJM",
    "us-northeast": "US-NY-NYIS",
}
SLACKS_H: tuple[int, ...] = (0, 1, 6, 24)


@dataclass(frozen=True)
class ThesisSetup:
    regions: Mapping[str, str] = field(default_factory=lambda: dict(US_REGIONS))
    # Late in a US spring term (when a course's fourth project would be due), local midnight.
    start: datetime = datetime(2023, 5, 29, 7, tzinfo=UTC)
    count: int = 134
    tz: str = "America/Los_Angeles"
    static_region: str = "us-west"
    seed: int = 0
    slacks_h: Sequence[int] = SLACKS_H
    year_weeks: bool = True
    pue: float = 1.0
    forecast_margin: float = 0.25
    #: The forecast the online scheduler uses by default (the headline's).
    forecast: str = DEFAULT_METHOD


def thesis_replay(provider: CarbonProvider, setup: ThesisSetup | None = None) -> dict[str, Any]:
    """Run the thesis-like experiment; returns a JSON-ready document."""
    setup = setup or ThesisSetup()
    model = ArrivalModel(count=setup.count, start=setup.start, days=7, tz=setup.tz, seed=setup.seed)
    trace = model.generate()
    year_start = datetime(setup.start.year, 1, 1, tzinfo=UTC)
    grid = CarbonGrid.load(provider, setup.regions, year_start, year_start.replace(year=setup.start.year + 1))
    base = SimulationConfig(static_region=setup.static_region, seed=setup.seed, pue=setup.pue,
                            forecast_margin=setup.forecast_margin,
                            forecasts=tuple(dict.fromkeys(("oracle", "persistence", "seasonal-day", setup.forecast))))
    by_slack = {}
    main_doc: dict[str, Any] = {}
    for slack_h in setup.slacks_h:
        result = simulate(trace, grid, replace(base, slack_s=slack_h * 3600.0))
        doc = to_dict(result, setup.tz)
        by_slack[str(slack_h)] = doc["runs"]
        if slack_h == 0:
            main_doc = doc
    out: dict[str, Any] = {
        "experiment": "thesis",
        "thesis": THESIS,
        "setup": {
            "regions": dict(setup.regions), "start": setup.start.isoformat(), "count": setup.count,
            "tz": setup.tz, "static_region": setup.static_region, "seed": setup.seed,
            "runtime_mean_s": float(trace.runtime_s.mean()), "pue": setup.pue,
            "forecast": setup.forecast, "forecast_margin": setup.forecast_margin,
            "zones": list(setup.regions.values()), "period": [trace.start.isoformat(), trace.end.isoformat()],
        },
        "simulation": main_doc,
        "by_slack_h": by_slack,
    }
    if setup.year_weeks:
        out["weeks"] = _every_week(trace_model=model, grid=grid, base=base, year=setup.start.year)
        out["weeks_slack"] = _every_week_slack(model, grid, base, setup)
    return out


def _every_week_slack(trace_model: ArrivalModel, grid: CarbonGrid, base: SimulationConfig, setup: ThesisSetup) -> dict[str, Any]:
    """Spatio-temporal with the default forecast, per slack, for the week shape in every
    week: grams saved vs static and % vs static."""
    first = datetime(setup.start.year, 1, 2, 8, tzinfo=UTC)
    cfg = replace(base, policies=("static", "carbon-optimal", "spatio-temporal"), forecasts=("oracle", setup.forecast))
    out: dict[str, Any] = {}
    traces = [replace(trace_model, start=first + timedelta(weeks=k)).generate() for k in range(51)]
    for slack_h in setup.slacks_h:
        if slack_h == 0:
            continue
        saved, pct_static = [], []
        for trace in traces:
            run = simulate(trace, grid, replace(cfg, slack_s=slack_h * 3600.0)).run("spatio-temporal", setup.forecast)
            saved.append(float(run.metrics["saved_vs_static_g"]))
            pct_static.append(float(run.metrics["pct_vs_static"]))
        out[str(slack_h)] = {
            "saved_g": saved, "pct_vs_static": pct_static, "total_saved_g": float(np.sum(saved)),
            "pct_median": float(np.median(pct_static)), "pct_min": float(np.min(pct_static)),
            "pct_max": float(np.max(pct_static)),
        }
    return out


def _every_week(trace_model: ArrivalModel, grid: CarbonGrid, base: SimulationConfig, year: int) -> dict[str, Any]:
    """Carbon-optimal's % vs static/random/worst for the same week shape in every week."""
    first = datetime(year, 1, 2, 8, tzinfo=UTC)
    rows: dict[str, list[float]] = {k: [] for k in THESIS}
    weeks = []
    cfg = replace(base, policies=("static", "random", "worst", "carbon-optimal"), forecasts=("oracle",))
    for k in range(51):
        start = first + timedelta(weeks=k)
        trace = replace(trace_model, start=start).generate()
        run = simulate(trace, grid, cfg).run("carbon-optimal")
        weeks.append(start.date().isoformat())
        for key in THESIS:
            rows[key].append(float(run.metrics[key]))
    summary = {
        key: {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v))}
        for key, v in rows.items()
    }
    return {"weeks": weeks, "carbon_optimal": rows, "summary": summary}


def summary_lines(doc: Mapping[str, Any]) -> list[str]:
    """Human-readable lines stating measured savings beside the thesis's."""
    lines = []
    runs0 = {r["label"]: r for r in doc["by_slack_h"]["0"]}
    co = runs0["carbon-optimal"]
    lines.append("carbon-optimal (spatial, no slack), measured vs thesis:")
    for key, name in (("pct_vs_static", "static us-west"), ("pct_vs_random", "random"), ("pct_vs_worst", "worst")):
        lines.append(f"  vs {name:15s} {co[key]:+7.2f} %   (thesis {THESIS[key]:+.2f} %)")
    setup = doc["setup"]
    fc = setup.get("forecast", DEFAULT_METHOD)
    lines.insert(0, f"period {setup['period'][0][:16]} .. {setup['period'][1][:16]} UTC; zones "
                    f"{', '.join(setup['zones'])}; static {setup['static_region']}; "
                    f"{setup.get('emission_factor', 'lifecycle')} intensity, PUE {setup['pue']:g}")
    for label in ("carbon-optimal [persistence]", "carbon-optimal [seasonal-day]"):
        if label in runs0:
            lines.append(f"  {label:32s} vs static {runs0[label]['pct_vs_static']:+7.2f} %")
    lines.append("spatio-temporal with slack: vs static, share of the oracle's extra saving over "
                 "carbon-optimal now, mean delay:")
    for slack, runs in doc["by_slack_h"].items():
        by = {r["label"]: r for r in runs}
        parts = []
        for label in ("spatio-temporal", "spatio-temporal [persistence]", "spatio-temporal [seasonal-day]",
                      f"spatio-temporal [{fc}]"):
            if label not in by or (label != "spatio-temporal" and label.endswith("[seasonal-day]") and fc == "seasonal-day"):
                continue
            r = by[label]
            extra = r.get("share_of_oracle_extra")
            share = "—" if extra is None else f"{100 * extra:.0f} %"
            parts.append(f"{label.replace('spatio-temporal', 'ST')} {r['pct_vs_static']:+.2f} %"
                         f" ({share}, {r['delay_mean_s'] / 60:.0f} min)")
        lines.append(f"  {slack:>2s} h: " + "; ".join(parts))
    head = {r["label"]: r for r in doc["by_slack_h"][max(doc["by_slack_h"], key=float)]}
    best = head.get(f"spatio-temporal [{fc}]")
    if best is not None:
        lines.insert(1, f"headline: {best['saved_vs_static_g']:.2f} g saved vs static this week with "
                        f"{max(doc['by_slack_h'], key=float)} h of slack ({best['pct_vs_static']:+.1f} %, "
                        f"spatio-temporal [{fc}], no foresight)")
    if "weeks_slack" in doc:
        lines.append(f"spatio-temporal [{fc}] with slack, same week shape over every week of the year:")
        for slack, w in doc["weeks_slack"].items():
            lines.append(f"  {slack:>2s} h: {w['total_saved_g']:.1f} g saved vs static over 51 weeks; "
                         f"median {w['pct_median']:+.2f} % [{w['pct_min']:+.2f}, {w['pct_max']:+.2f}]")
    if "weeks" in doc:
        s = doc["weeks"]["summary"]
        lines.append("same week shape over every week of the year, carbon-optimal (median [min, max]):")
        for key in THESIS:
            lines.append(f"  {key:14s} {s[key]['median']:+7.2f} % [{s[key]['min']:+.2f}, {s[key]['max']:+.2f}]")
    return lines
