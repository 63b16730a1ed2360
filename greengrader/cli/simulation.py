"""``greengrader simulate`` and ``greengrader report``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from greengrader.cli.common import Duration
from greengrader.errors import ConfigError, GreengraderError
from greengrader.scheduling.policies import POLICIES
from greengrader.times import parse_instant


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time (e.g. 2024-12-01 or 2024-12-01T13:00)") from None


def _provider(source: str, carbon_dir: Path | None, factor: str | None) -> Any:
    from greengrader.carbon import get_provider
    from greengrader.carbon.dataset import DatasetProvider
    from greengrader.carbon.store import CarbonStore
    from greengrader.settings import get_settings

    settings = get_settings()
    if factor is not None:
        settings = settings.model_copy(update={"carbon_emission_factor": factor})
    if carbon_dir is not None:
        store = CarbonStore(settings.home, carbon_dir, factor=settings.carbon_emission_factor)
        return DatasetProvider(store, step_s=settings.carbon_step_s)
    return get_provider(source, settings)


def _zones(regions: str | None) -> dict[str, str]:
    from greengrader.regions.registry import load_regions
    from greengrader.settings import get_settings

    registry = load_regions(get_settings().regions_file)
    if not regions:
        return {r.name: r.zone for r in registry.enabled()}
    out = {}
    for name in (n.strip() for n in regions.split(",") if n.strip()):
        # A registry region name, or a carbon zone used as its own region.
        out[name] = registry.get(name).zone if name in registry else name
    return out


def _trace(kind: str, start: datetime | None, end: datetime | None, count: int, seed: int, tz: str) -> Any:
    from greengrader.settings import get_settings
    from greengrader.simulation import traces

    settings = get_settings()
    if kind == "model":
        kw: dict[str, Any] = {"count": count, "seed": seed, "tz": tz}
        if start is not None:
            kw["start"] = start
        if start is not None and end is not None:
            kw["days"] = max(1, round((end - start).total_seconds() / 86400))
        return traces.ArrivalModel(**kw).generate()
    if kind == "db":
        from greengrader.db import get_database

        return traces.from_database(get_database(settings), start=start, end=end,
                                    default_runtime_s=settings.default_runtime_s)
    path = Path(kind.removeprefix("csv:"))
    trace = traces.from_csv(path, default_runtime_s=settings.default_runtime_s)
    if start is not None or end is not None:
        lo = start.timestamp() if start else float("-inf")
        hi = end.timestamp() if end else float("inf")
        keep = (trace.arrival_s >= lo) & (trace.arrival_s < hi)
        trace = traces.Trace.build(trace.arrival_s[keep], trace.runtime_s[keep], trace.assignment[keep],
                                   trace.deadline_s[keep], assignments=trace.assignments, source=trace.source)
    return trace


def _print_table(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:+.2f} %"

    def share(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.0f} %"

    cfg, carbon, trace = doc["config"], doc["carbon"], doc["trace"]
    table = Table(title=f"{trace['jobs']} jobs, slack {cfg['slack_s'] / 3600:g} h")
    for col in ("policy", "forecast", "gCO2eq", "vs static", "vs random", "vs worst", "of oracle extra",
                "of oracle (vs static)", "delay mean", "delay p95", "misses", "over cap."):
        table.add_column(col, justify="left" if col in ("policy", "forecast") else "right", no_wrap=True)
    for r in doc["runs"]:
        policy = r["policy"] + (" (capacity)" if r["capacity_limited"] else "")
        table.add_row(
            policy, r["forecast"], f"{r['total_g']:.3f}", pct(r["pct_vs_static"]), pct(r["pct_vs_random"]),
            pct(r["pct_vs_worst"]), share(r.get("share_of_oracle_extra")), share(r["share_of_oracle_savings"]),
            f"{r['delay_mean_s'] / 60:.1f} min", f"{r['delay_p95_s'] / 60:.1f} min",
            str(r["deadline_misses"]), "—" if r["capacity_violations"] is None else str(r["capacity_violations"]),
        )
    console = Console()
    console.width = max(console.width, 170)
    zones = ", ".join(f"{r}={z}" for r, z in zip(carbon["regions"], carbon["zones"], strict=True))
    console.print(f"period {trace['start'][:16]} .. {trace['end'][:16]} UTC; regions {zones}; static "
                  f"{cfg['static_region']}; {carbon.get('emission_factor', '')} intensity; {cfg['watts']:g} W x PUE "
                  f"{cfg['pue']:g}; carbon {', '.join(sorted(set(carbon['sources'])))}")
    console.print(table)
    console.print("of oracle extra: share of the oracle's extra saving over carbon-optimal now that the run "
                  "captures; of oracle (vs static): share of the oracle's saving over static.")


@click.command("simulate")
@click.option("--trace", "trace_kind", default="model", show_default=True,
              help="model | db | PATH.csv (columns timestamp, assignment, runtime[, deadline])")
@click.option("--regions", default=None, help="comma-separated region names or zones (default: the registry's)")
@click.option("--from", "start", default=None, help="period start (ISO 8601, e.g. 2024-12-01; naive = UTC)")
@click.option("--to", "end", default=None, help="period end (ISO 8601, e.g. 2024-12-08; naive = UTC)")
@click.option("--policies", default=None,
              help=f"comma-separated policies, of: {', '.join(sorted(POLICIES))} (default: all)")
@click.option("--slack", type=Duration(), default="0h", show_default=True,
              help="max delay per job, with a unit: 90m, 24h, 2d (a bare number is refused: seconds or hours?)")
@click.option("--count", default=134, show_default=True, help="submissions (model trace)")
@click.option("--seed", default=0, show_default=True)
@click.option("--forecasts", default="oracle,persistence,seasonal-day,blend", show_default=True)
@click.option("--capacity", default=None, type=float, help="jobs each region can start per hour (adds capacity-limited runs)")
@click.option("--static-region", default=None, help="home region of the static baseline (default: the first)")
@click.option("--tz", default="America/Los_Angeles", show_default=True, help="course time zone (model, figures)")
@click.option("--watts", default=5.0, show_default=True, help="power per job (W)")
@click.option("--pue", type=float, default=None, help="power usage effectiveness (default: GREENGRADER_PUE)")
@click.option("--emission-factor", type=click.Choice(["lifecycle", "direct"]), default=None,
              help="intensity factor (default: GREENGRADER_CARBON_EMISSION_FACTOR)")
@click.option("--forecast-margin", type=float, default=None,
              help="regret-guard margin x the forecast's error (default: GREENGRADER_FORECAST_MARGIN)")
@click.option("--carbon-source", default="dataset", show_default=True)
@click.option("--carbon-dir", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="folder of carbon data files (default: GREENGRADER_CARBON_DATA_DIR and imported files)")
@click.option("--experiment", type=click.Choice(["thesis"]), default=None, help="run a packaged experiment")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--save", type=click.Path(path_type=Path, dir_okay=False), default=None, help="also write the JSON here")
def simulate_cmd(
    trace_kind: str, regions: str | None, start: str | None, end: str | None, policies: str | None,
    slack: timedelta, count: int, seed: int, forecasts: str, capacity: float | None, static_region: str | None,
    tz: str, watts: float, pue: float | None, emission_factor: str | None, forecast_margin: float | None,
    carbon_source: str, carbon_dir: Path | None, experiment: str | None, as_json: bool, save: Path | None,
) -> None:
    """Replay submissions through the scheduling policies over real hourly carbon data
    (the packaged hourly sample when nothing is imported)."""
    from greengrader.settings import get_settings

    settings = get_settings()
    provider = _provider(carbon_source, carbon_dir, emission_factor)
    factor = emission_factor or settings.carbon_emission_factor
    pue = settings.pue if pue is None else pue
    margin = settings.forecast_margin if forecast_margin is None else forecast_margin
    if experiment == "thesis":
        from greengrader.simulation.experiments import ThesisSetup, summary_lines, thesis_replay

        doc = thesis_replay(provider, ThesisSetup(pue=pue, forecast_margin=margin))
        doc["setup"]["emission_factor"] = factor
        _emit(doc, as_json, save, lambda: click.echo("\n".join(summary_lines(doc))))
        return
    from rich.progress import Progress

    from greengrader.simulation.engine import simulate
    from greengrader.simulation.grid import CarbonGrid
    from greengrader.simulation.metrics import to_dict
    from greengrader.simulation.runs import DEFAULT_POLICIES, SimulationConfig

    t0, t1 = _when(start), _when(end)
    trace = _trace(trace_kind, t0, t1, count, seed, tz)
    zones = _zones(regions)
    slack_s = slack.total_seconds()
    grid = CarbonGrid.load(provider, zones, trace.start - timedelta(hours=1),
                           trace.end + timedelta(seconds=slack_s + 2 * 3600 + float(trace.runtime_s.max())))
    config = SimulationConfig(
        policies=tuple(p.strip() for p in policies.split(",")) if policies else DEFAULT_POLICIES,
        slack_s=slack_s, forecasts=tuple(f.strip() for f in forecasts.split(",")),
        capacity=None if capacity is None else (capacity * grid.step_s / 3600.0,),
        watts=watts, pue=pue, static_region=static_region or next(iter(zones)), seed=seed,
        forecast_margin=margin,
    )
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("simulating", total=1)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, description=label, completed=done, total=total)

        result = simulate(trace, grid, config, progress)
    doc = to_dict(result, tz)
    doc["carbon"]["emission_factor"] = factor
    _emit(doc, as_json, save, lambda: _print_table(doc))


def _emit(doc: dict[str, Any], as_json: bool, save: Path | None, human: Any) -> None:
    text = json.dumps(doc, indent=1)
    if save is not None:
        save.write_text(text, encoding="utf-8")
    if as_json:
        click.echo(text)
    else:
        human()


@click.command("report")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--simulation", "sim_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="a JSON file written by `simulate --save` or `--json`")
@click.option("--db/--no-db", "use_db", default=True, show_default=True, help="include real runs from the database")
@click.option("--from", "start", default=None, help="only runs received from this time (ISO 8601; naive = UTC)")
@click.option("--to", "end", default=None, help="only runs received before this time (ISO 8601; naive = UTC)")
@click.option("--tz", default="America/Los_Angeles", show_default=True)
def report_cmd(out_dir: Path, sim_path: Path | None, use_db: bool, start: str | None, end: str | None, tz: str) -> None:
    """Figures (PNG) and one self-contained HTML page from the database and/or a simulation."""
    from greengrader.reports import ReportData, build_report

    data = ReportData(tz=tz)
    if sim_path is not None:
        try:
            doc = json.loads(sim_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{sim_path}: not a simulation JSON: {exc}") from None
        data.simulation = doc.get("simulation", doc) if doc.get("experiment") else doc
        if not isinstance(data.simulation, dict) or "runs" not in data.simulation:
            raise GreengraderError(f"{sim_path}: not a simulation JSON (no runs)")
    if use_db:
        from greengrader.cli.common import cli_context
        from greengrader.reports.database import collect

        data.database = collect(cli_context().db, tz, _when(start), _when(end))
    report = build_report(data, out_dir)
    for path in report.figures.values():
        click.echo(str(path))
    click.echo(str(report.html_path))


def register(group: click.Group) -> None:
    group.add_command(simulate_cmd)
    group.add_command(report_cmd)
