"""Server-side SVG charts (matplotlib, Agg; no pyplot state), drawn like the report's figures.

Every series differs by line style, marker or hatch as well as by colour, so the charts
read in greyscale and for colour-blind readers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from itertools import cycle
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from greengrader.carbon.base import CarbonProvider
from greengrader.errors import GreengraderError
from greengrader.web.schemas import CarbonDay, DecisionView, RegionView

STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "x"), (":", "*"))
COLOURS = ("#1b5e20", "#0d47a1", "#b71c1c", "#4a148c", "#e65100", "#006064", "#3e2723")


def _figure(width: float = 7.0, height: float = 3.2) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, axis="y", color="#ccc", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def svg(fig: Figure) -> str:
    """The figure as an SVG document (text kept as text, scalable by CSS)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "greengrader"}):
        fig.savefig(buf, format="svg")
    return buf.getvalue()


def carbon_per_day(days: Sequence[CarbonDay], baseline_region: str) -> str:
    """Drawing costs ~100 ms; overview polls and reloads redraw only when the numbers change."""
    return _carbon_per_day(tuple((d.day, d.emitted_g, d.baseline_g) for d in days), baseline_region)


@lru_cache(maxsize=64)
def _carbon_per_day(rows: tuple[tuple[str, float, float], ...], baseline_region: str) -> str:
    days = [CarbonDay(day=d, emitted_g=e, baseline_g=b, jobs=0) for d, e, b in rows]
    fig, ax = _figure()
    xs = range(len(days))
    ax.bar([x - 0.2 for x in xs], [d.emitted_g for d in days], 0.4, color="#1b5e20", label="emitted")
    ax.bar([x + 0.2 for x in xs], [d.baseline_g for d in days], 0.4, color="#ffffff", edgecolor="#333",
           hatch="///", label=f"all in {baseline_region}")
    ax.set_xticks(list(xs), [d.day[5:] for d in days], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("gCO2eq")
    ax.set_title("Emissions per day: measured vs baseline region")
    ax.legend(fontsize=8, frameon=False)
    if not days:
        ax.text(0.5, 0.5, "no graded jobs yet", transform=ax.transAxes, ha="center")
    return svg(fig)


def _hours(start: datetime, n: int, step_s: int, origin: datetime) -> list[float]:
    return [((start - origin).total_seconds() + i * step_s) / 3600 for i in range(n)]


def intensity_next_24h(regions: Sequence[RegionView], now: datetime) -> str:
    fig, ax = _figure(7.0, 3.8)
    for r, (ls, marker), colour in zip(regions, cycle(STYLES), cycle(COLOURS), strict=False):
        if r.next_24h:
            hours = _hours(now, len(r.next_24h), r.step_s, now)
            ax.step(hours, r.next_24h, where="post", linestyle=ls, marker=marker, ms=4, color=colour,
                    label=r.name, markevery=max(1, len(hours) // 12))
    ax.set_xlabel("hours from now (UTC)")
    ax.set_ylabel("gCO2eq/kWh")
    ax.set_title("Carbon intensity forecast, next 24 h")
    fig.legend(fontsize=8, ncols=3, frameon=False, loc="outside lower center")
    return svg(fig)


def placement(decision: DecisionView, provider: CarbonProvider, zones: dict[str, str]) -> str:
    """Each candidate's forecast as seen at decision time, the chosen start marked."""
    fig, ax = _figure(7.0, 3.8)
    origin = decision.created_at
    runtime = decision.runtime_estimate_s or 60.0
    horizon = int(max(6 * 3600, (decision.start_at - origin).total_seconds() + runtime + 3600))
    drawn = 0
    for c, (ls, marker), colour in zip(decision.candidates, cycle(STYLES), cycle(COLOURS), strict=False):
        zone = c.zone or zones.get(c.region)
        if zone is None:
            continue
        try:
            series = provider.forecast(zone, origin, horizon)
        except GreengraderError:
            continue
        hours = _hours(series.start, len(series), series.step_s, origin)
        label = f"{c.region} (chosen)" if c.chosen else c.region
        ax.step(hours, list(series.values), where="post", linestyle=ls, marker=marker, ms=4, color=colour,
                linewidth=2.5 if c.chosen else 1.2, label=label, markevery=max(1, len(hours) // 12))
        drawn += 1
    start_h = (decision.start_at - origin).total_seconds() / 3600
    ax.axvspan(start_h, start_h + runtime / 3600, color="#999", alpha=0.35, hatch="xx", label="chosen run")
    ax.axvline(start_h, color="#000", linestyle="--", linewidth=1)
    ax.annotate(f"start {decision.start_at:%H:%M} UTC in {decision.region}", (start_h, 1.0),
                xycoords=("data", "axes fraction"), fontsize=8, va="top", ha="left")
    ax.set_xlabel(f"hours after the decision ({origin:%Y-%m-%d %H:%M} UTC)")
    ax.set_ylabel("gCO2eq/kWh")
    ax.set_title("Forecast per candidate region and the chosen start")
    if drawn:
        fig.legend(fontsize=8, ncols=3, frameon=False, loc="outside lower center")
    else:
        ax.text(0.5, 0.5, "forecasts unavailable", transform=ax.transAxes, ha="center")
    return svg(fig)


def runtime_histogram(runtimes: Sequence[float]) -> str:
    fig, ax = _figure(5.0, 2.4)
    ax.hist(list(runtimes), bins=min(20, max(5, len(runtimes))), color="#0d47a1", edgecolor="#fff", hatch="..")
    ax.set_xlabel("runtime (s)")
    ax.set_ylabel("jobs")
    ax.set_title("Runtime distribution")
    return svg(fig)

