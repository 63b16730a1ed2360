"""Assemble the report: PNG files plus one self-contained HTML page (figures embedded as
base64, tables inline) from database statistics and/or a simulation JSON document."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from greengrader.errors import GreengraderError
from greengrader.reports import figures
from greengrader.reports.database import AGREEMENT_KEYS, DatabaseStats, utc_offset_hours

REPORT_HTML = "report.html"


@dataclass
class ReportData:
    """What a report is built from (either part may be missing)."""

    tz: str = "UTC"
    database: DatabaseStats | None = None
    simulation: dict[str, Any] | None = None
    title: str = "GreenGrader report"


@dataclass
class Report:
    html_path: Path
    figures: dict[str, Path] = field(default_factory=dict)


def _figures(data: ReportData) -> dict[str, tuple[str, Figure]]:
    out: dict[str, tuple[str, Figure]] = {}
    sim = data.simulation
    if data.database is not None and data.database.submissions:
        db = data.database
        out["db_submissions_per_date"] = ("Real submissions per date", figures.submissions_per_date(db.per_date))
        out["db_submissions_per_hour"] = ("Real submissions per hour of day", figures.submissions_per_hour(db.per_hour, data.tz))
    if sim is not None:
        tr, carbon = sim["trace"], sim["carbon"]
        out["sim_submissions_per_date"] = ("Simulated trace: submissions per date", figures.submissions_per_date(tr["per_date"]))
        out["sim_submissions_per_hour"] = ("Simulated trace: submissions per hour of day", figures.submissions_per_hour(tr["per_hour"], tr["tz"]))
        shift = utc_offset_hours(tr["tz"], datetime.fromisoformat(tr["start"]))
        out["intensity_24h"] = ("Carbon intensity over 24 h", figures.intensity_24h(carbon["intensity_by_utc_hour"], tr["tz"], shift))
        runs = [r for r in sim["runs"] if not r["capacity_limited"]]
        out["emissions_per_policy"] = ("Emissions per policy", figures.emissions_per_policy(runs))
        limited = [r for r in sim["runs"] if r["capacity_limited"]]
        if limited:
            out["emissions_per_policy_capacity"] = ("Emissions per policy, capacity-limited", figures.emissions_per_policy(limited))
    return out


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
        return html.escape("—" if v is None else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(v: object) -> str:
    return "—" if v is None else f"{float(v):+.2f} %"  # type: ignore[arg-type]


def _database_tables(db: DatabaseStats) -> str:
    parts = [f"<h2>Real runs</h2><p>{db.submissions} submissions.</p>"]
    parts.append("<h3>Agreement with Gradescope</h3>" + _table(
        list(AGREEMENT_KEYS), [[db.agreement.get(k, 0) for k in AGREEMENT_KEYS]]))
    keys = ["n", "mean", "p50", "p90", "p95", "p99"]
    parts.append("<h3>Runtime and overhead (s)</h3>" + _table(
        ["", *keys], [["runtime", *[db.runtime_s.get(k) for k in keys]],
                      ["overhead (turnaround - runtime)", *[db.overhead_s.get(k) for k in keys]]]))
    parts.append("<h3>Energy and emissions per assignment and region</h3>" + _table(
        ["assignment", "region", "jobs", "energy kWh", "gCO2eq"], db.by_assignment_region))
    return "".join(parts)


def _simulation_tables(sim: dict[str, Any]) -> str:
    tr, cfg = sim["trace"], sim["config"]
    intro = (f"<h2>Simulation</h2><p>{tr['jobs']} jobs ({html.escape(tr['source'])}), "
             f"{html.escape(tr['start'])} .. {html.escape(tr['end'])}; regions "
             f"{html.escape(', '.join(sim['carbon']['regions']))}; slack {cfg['slack_s'] / 3600:g} h; "
             f"computed in {sim['seconds']:.2f} s.</p>")
    rows = [[r["label"], r["total_g"], _pct(r["pct_vs_static"]), _pct(r["pct_vs_random"]),
             _pct(r["pct_vs_worst"]),
             None if r["share_of_oracle_savings"] is None else f"{100 * r['share_of_oracle_savings']:.0f} %",
             r["delay_mean_s"] / 60, r["delay_p95_s"] / 60, r["deadline_misses"], r["capacity_violations"],
             ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["share"].items() if v > 0)]
            for r in sim["runs"]]
    return intro + _table(
        ["policy", "gCO2eq", "vs static", "vs random", "vs worst", "of oracle's savings",
         "delay mean (min)", "delay p95 (min)", "deadline misses", "capacity violations", "share per region"],
        rows)


def render_html(data: ReportData, pngs: dict[str, tuple[str, bytes]]) -> str:
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:100%}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(data.title)}</title>"
             f"<style>{style}</style></head><body><h1>{html.escape(data.title)}</h1>"]
    if data.database is not None:
        parts.append(_database_tables(data.database))
    if data.simulation is not None:
        parts.append(_simulation_tables(data.simulation))
    parts.append("<h2>Figures</h2>")
    for name, (caption, png) in pngs.items():
        b64 = base64.b64encode(png).decode()
        parts.append(f"<figure id='{name}'><img alt='{html.escape(caption)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "".join(parts)


def build_report(data: ReportData, out: Path) -> Report:
    """Write every figure as ``<out>/<name>.png`` and ``<out>/report.html``."""
    if data.database is None and data.simulation is None:
        raise GreengraderError("nothing to report: give a database and/or a simulation JSON")
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / REPORT_HTML)
    pngs: dict[str, tuple[str, bytes]] = {}
    for name, (caption, fig) in _figures(data).items():
        png = figures.png_bytes(fig)
        path = out / f"{name}.png"
        path.write_bytes(png)
        report.figures[name] = path
        pngs[name] = (caption, png)
    report.html_path.write_text(render_html(data, pngs), encoding="utf-8")
    return report
