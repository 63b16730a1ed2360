"""``greengrader carbon ...`` and ``greengrader regions``: carbon data on the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from greengrader.carbon import get_provider
from greengrader.carbon.base import CarbonProvider
from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.fallback import FallbackProvider
from greengrader.carbon.forecast import METHODS, mape
from greengrader.carbon.store import CarbonStore
from greengrader.cli.common import emit_rows, json_option
from greengrader.errors import CarbonDataError
from greengrader.regions.registry import load_regions
from greengrader.settings import Settings, get_settings
from greengrader.times import parse_instant


def _store(settings: Settings) -> CarbonStore:
    return CarbonStore(settings.home, settings.carbon_data_dir, factor=settings.carbon_emission_factor)


def _when(text: str | None, option: str = "time") -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time (e.g. 2024-12-01 or 2024-12-01T13:00Z)",
                                 param_hint=option) from None


def _dataset(provider: CarbonProvider) -> DatasetProvider | None:
    if isinstance(provider, DatasetProvider):
        return provider
    if isinstance(provider, FallbackProvider):
        return next((p for p in provider.providers if isinstance(p, DatasetProvider)), None)
    return None


@click.group("carbon")
def carbon_group() -> None:
    """Carbon-intensity data: import data sets, show series, measure forecasts."""


@carbon_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--copy", is_flag=True, help="Keep a private copy under GREENGRADER_HOME/carbon/files.")
def import_cmd(files: tuple[Path, ...], copy: bool) -> None:
    """Register downloaded carbon-intensity FILES (format detected) and build their cache."""
    settings = get_settings()
    store = _store(settings)
    failed = 0
    for path in files:
        try:
            entry = store.register(path, copy=copy)
        except CarbonDataError as exc:
            click.echo(f"FAILED {path}: {exc}", err=True)
            failed += 1
            continue
        provider = DatasetProvider(store, step_s=settings.carbon_step_s)
        click.echo(f"imported {path.name} ({entry.fmt}, {entry.signal}): zones {', '.join(entry.zones)}")
        for zone in entry.zones:
            for series in provider.load(zone):
                if series.source == entry.source:
                    click.echo(f"  {zone}: {series.start:%Y-%m-%d %H:%M} .. {series.end:%Y-%m-%d %H:%M} UTC, "
                               f"{len(series)} x {series.step_s} s")
                    for note in series.notes:
                        click.echo(f"    note: {note}")
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} files could not be imported")


@carbon_group.command("zones")
def zones_cmd() -> None:
    """List the zones the imported data sets cover."""
    provider = DatasetProvider(_store(get_settings()))
    table = Table("zone", "source", "signal", "from (UTC)", "to (UTC)", "step")
    for zone in provider.zones():
        for s in provider.load(zone):
            table.add_row(zone, s.source, s.signal, f"{s.start:%Y-%m-%d %H:%M}", f"{s.end:%Y-%m-%d %H:%M}", f"{s.step_s} s")
    Console(width=200).print(table)


@carbon_group.command("show")
@click.argument("zone")
@click.option("--from", "start", help="Start (ISO 8601; naive = UTC). Default: one day before --to.")
@click.option("--to", "end", help="End (ISO 8601; naive = UTC). Default: the data set's 'now'.")
@click.option("--source", default=None, help="Provider name or chain (default GREENGRADER_CARBON_SOURCE).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG plot here.")
def show_cmd(zone: str, start: str | None, end: str | None, source: str | None, plot: Path | None) -> None:
    """Print (or plot) ZONE's intensity between --from and --to."""
    settings = get_settings()
    provider = get_provider(source or settings.carbon_source, settings)
    ds = _dataset(provider)
    t1 = _when(end, "--to") or _now(ds, zone)
    t0 = _when(start, "--from") or t1 - timedelta(days=1)
    series = provider.series(zone, t0, t1)
    click.echo(f"# {zone} {series.signal} gCO2eq/kWh from {series.source}{' (forecast)' if series.forecast else ''}")
    for note in series.notes:
        click.echo(f"# note: {note}")
    if plot is not None:
        _plot(series.times(), series.values, f"{zone} ({series.source})", plot)
        click.echo(f"# plot written to {plot}")
        return
    for t, v in zip(series.times(), series.values, strict=True):
        click.echo(f"{str(t).replace('T', ' ')}Z\t{v:.2f}")


def _plot(times: npt.NDArray[np.datetime64], values: npt.NDArray[np.float64], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.step(times, values, where="post")
    ax.set_title(title)
    ax.set_ylabel("gCO2eq/kWh")
    ax.set_xlabel("UTC")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@carbon_group.command("mape")
@click.argument("zones", nargs=-1, required=True)
@click.option("--horizon-hours", default=24, show_default=True, type=click.IntRange(1, 24 * 14))
def mape_cmd(zones: tuple[str, ...], horizon_hours: int) -> None:
    """Measure each forecast method's error (MAPE, %) on the data set for ZONES."""
    provider = DatasetProvider(_store(get_settings()))
    table = Table("zone", *METHODS)
    for zone in zones:
        full = provider.full(zone)
        table.add_row(zone, *(f"{mape(full, m, horizon_hours * 3600):.1f}" for m in METHODS))
    Console(width=200).print(table)


def _now(ds: DatasetProvider | None, zone: str) -> datetime:
    """The data set's 'now' for ``zone`` when it has data, else the wall clock."""
    if ds is not None:
        try:
            return ds.now(zone)
        except CarbonDataError:
            pass
    return datetime.now(UTC).replace(second=0, microsecond=0)


@click.command("regions")
@click.option("--source", default=None, help="Provider name or chain (default GREENGRADER_CARBON_SOURCE).")
@click.option("--at", "at", default=None, help="Time to show (ISO 8601); default now (data-set 'now').")
@json_option
def regions_cmd(source: str | None, at: str | None, as_json: bool) -> None:
    """List the configured regions with their current carbon intensity."""
    settings = get_settings()
    registry = load_regions(settings.regions_file)
    provider = get_provider(source or settings.carbon_source, settings)
    ds = _dataset(provider)
    rows: list[dict[str, object]] = []
    kinds: set[str] = set()
    when = _when(at, "--at")
    for r in registry:
        try:
            shown_at = when or _now(ds, r.zone)
            s = provider.series(r.zone, shown_at, shown_at + timedelta(seconds=1))
            kind = "annual average" if s.source.startswith("embedded") else "hourly"
            kinds.add(kind)
            value: float | None = round(s.at(shown_at), 1)
            src, shown = s.source, f"{shown_at:%Y-%m-%d %H:%M}"
        except CarbonDataError as exc:
            value, kind, src, shown = None, None, f"unavailable: {exc}"[:60], None
        rows.append({"region": r.name + ("" if r.enabled else " (disabled)"), "zone": r.zone, "queue": r.queue_name,
                     "lat": round(r.lat, 2), "lon": round(r.lon, 2), "slots": r.capacity, "intensity": value,
                     "kind": kind, "at": shown, "source": src})
    emit_rows(rows, {"region": "region", "zone": "zone", "queue": "queue", "lat": "lat", "lon": "lon",
                     "slots": "slots", "intensity": "gCO2eq/kWh", "kind": "kind", "at": "at (UTC)",
                     "source": "source"}, as_json)
    if len(kinds) > 1 and not as_json:
        click.echo("note: some regions show hourly values and others annual averages (no hourly data for "
                   "their zone): the two are not comparable hour by hour. Import hourly data for every zone "
                   "with `greengrader carbon import`.")


def register(group: click.Group) -> None:
    group.add_command(carbon_group)
    group.add_command(regions_cmd)
