"""The report's figures, each a :class:`matplotlib.figure.Figure` drawn with the Agg backend
(no display, no pyplot global state)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_SIZE = (8.0, 4.0)


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=_SIZE, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def submissions_per_date(per_date: Mapping[str, int]) -> Figure:
    fig, ax = _figure()
    dates = list(per_date)
    ax.bar(range(len(dates)), [per_date[d] for d in dates], color="#4c72b0")
    step = max(1, len(dates) // 14)
    ax.set_xticks(range(0, len(dates), step), dates[::step], rotation=45, ha="right")
    ax.set_ylabel("submissions")
    ax.set_title("Submissions per date")
    return fig


def submissions_per_hour(per_hour: Sequence[int], tz: str) -> Figure:
    fig, ax = _figure()
    ax.bar(range(24), list(per_hour), color="#55a868")
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel(f"hour of day ({tz})")
    ax.set_ylabel("submissions")
    ax.set_title("Submissions per hour of day")
    return fig


def intensity_24h(by_hour: Mapping[str, Sequence[float | None]], tz_label: str, shift_h: int = 0) -> Figure:
    """Mean intensity per hour of day, one line per region (``shift_h`` converts from UTC)."""
    fig, ax = _figure()
    hours = list(range(24))
    for region, values in by_hour.items():
        local = [values[(h - shift_h) % 24] for h in hours]
        ax.plot(hours, [float("nan") if v is None else v for v in local], marker="o", ms=3, label=region)
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel(f"hour of day ({tz_label})")
    ax.set_ylabel("gCO2eq/kWh")
    ax.set_title("Carbon intensity of each region over 24 h")
    ax.legend(fontsize=8, ncols=2)
    return fig


def emissions_per_policy(runs: Sequence[Mapping[str, Any]]) -> Figure:
    """Total emissions per run as bars, labelled with the change against ``static``."""
    fig, ax = _figure()
    labels = [str(r["label"]) for r in runs]
    totals = [float(r["total_g"]) for r in runs]
    bars = ax.bar(range(len(runs)), totals, color="#c44e52")
    for bar, run in zip(bars, runs, strict=True):
        pct = run.get("pct_vs_static")
        text = "n/a" if pct is None else f"{pct:+.1f} %"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(runs)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("gCO2eq")
    ax.set_title("Emissions per policy (% vs static)")
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
