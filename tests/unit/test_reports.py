"""Report figures carry their data; the HTML page embeds every figure."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from greengrader.reports import ReportData, build_report, figures
from greengrader.reports.database import DatabaseStats
from greengrader.simulation.engine import simulate
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.metrics import to_dict
from greengrader.simulation.runs import SimulationConfig
from greengrader.simulation.traces import ArrivalModel


def simulation_doc() -> dict[str, object]:
    start = datetime(2023, 5, 29, 7, tzinfo=UTC)
    hours = np.arange(24 * 10)
    values = np.vstack([200 + 100 * np.sin(hours / 24 * 2 * np.pi), 300 + 0 * hours, 120 + 50 * np.cos(hours / 5)])
    grid = CarbonGrid(("a", "b", "c"), ("A", "B", "C"), start.timestamp() - 86400, 3600, values)
    trace = ArrivalModel(start=start, count=80, seed=2).generate()
    result = simulate(trace, grid, SimulationConfig(slack_s=6 * 3600, capacity=(3,), forecasts=("oracle", "persistence")))
    return to_dict(result, "America/Los_Angeles")


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, bytes] = {}
        self._figure = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self._figure = a.get("id") or ""
        if tag == "img" and (a.get("src") or "").startswith("data:image/png;base64,"):
            self.images[self._figure] = base64.b64decode((a["src"] or "").split(",", 1)[1])


def test_bar_and_line_figures_hold_the_data() -> None:
    fig = figures.submissions_per_hour([0] * 18 + [5, 9, 12, 7] + [0, 0], "UTC")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[18:22] == [5, 9, 12, 7] and sum(heights) == 33
    fig = figures.intensity_24h({"a": [float(h) for h in range(24)], "b": [100.0] * 24}, "PT", shift_h=-7)
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["a", "b"]
    assert list(lines[0].get_ydata())[:3] == [7.0, 8.0, 9.0]  # local 0 h = 7 h UTC
    runs = [{"label": "static", "total_g": 10.0, "pct_vs_static": 0.0},
            {"label": "carbon-optimal", "total_g": 6.0, "pct_vs_static": -40.0}]
    fig = figures.emissions_per_policy(runs)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [10.0, 6.0]
    assert [t.get_text() for t in ax.texts] == ["+0.0 %", "-40.0 %"]


def test_rendered_png_has_ink_where_the_bars_are() -> None:
    fig = figures.submissions_per_date({"2023-05-29": 3, "2023-05-30": 0, "2023-05-31": 9})
    img = imread(io.BytesIO(figures.png_bytes(fig)))
    red_or_blue = (img[..., 2] > 0.6) & (img[..., 0] < 0.45)  # the bar colour #4c72b0
    assert red_or_blue.sum() > 2000


def test_html_report_embeds_every_figure(tmp_path: Path) -> None:
    db = DatabaseStats(submissions=3, per_date={"2023-05-29": 3}, per_hour=[0] * 20 + [3, 0, 0, 0],
                       agreement={"agrees": 2, "differs": 1, "unknown": 0},
                       runtime_s={"n": 3.0, "mean": 20.0, "p50": 20.0, "p90": 22.0, "p95": 23.0, "p99": 23.4},
                       overhead_s={"n": 3.0, "mean": 50.0, "p50": 50.0, "p90": 60.0, "p95": 61.0, "p99": 62.0},
                       by_assignment_region=[("HW1", "us-west", 3, 0.0001, 0.03)])
    report = build_report(ReportData(tz="America/Los_Angeles", database=db, simulation=simulation_doc()), tmp_path)
    text = report.html_path.read_text()
    parser = Images()
    parser.feed(text)
    assert set(parser.images) == set(report.figures)
    assert {"intensity_24h", "emissions_per_policy", "emissions_per_policy_capacity",
            "db_submissions_per_hour", "sim_submissions_per_date"} <= set(parser.images)
    for name, png in parser.images.items():
        assert png.startswith(b"\x89PNG") and png == report.figures[name].read_bytes()
    assert "spatio-temporal [persistence]" in text and "HW1" in text and "agrees" in text
