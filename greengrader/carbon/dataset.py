"""Carbon intensity from downloaded data sets (historical, hourly or finer).

The data are historical, so "now" is explicit: every call takes its times as arguments,
and :meth:`DatasetProvider.now` (used only where no time is given, e.g. ``greengrader
regions``) is ``GREENGRADER_CARBON_CLOCK`` if set, else today's date and time of year
replayed in the latest year the zone's data cover.

``best`` decides on what can be known at decision time: the forecast configured by
``GREENGRADER_FORECAST`` issued at the window start (``oracle`` uses the actual values).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from greengrader.carbon import sample
from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.forecast import (
    DEFAULT_METHOD,
    ERROR_WINDOW_DAYS,
    forecaster,
    lookback_steps,
    relative_error,
)
from greengrader.carbon.formats import RawSeries
from greengrader.carbon.resample import CleanReport, merge, regularize
from greengrader.carbon.store import CarbonStore
from greengrader.errors import CarbonDataError
from greengrader.settings import Settings
from greengrader.times import as_utc

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


class DatasetProvider:
    """Series from the files known to a :class:`CarbonStore`, on a common step."""

    name = "dataset"

    def __init__(
        self, store: CarbonStore, *, step_s: int = 3600, forecast: str = DEFAULT_METHOD,
        clock: Clock | None = None, use_sample: bool = True,
    ) -> None:
        self.store = store
        self.use_sample = use_sample
        self.step_s = step_s
        self.forecast_method = forecast
        self._forecast = forecaster(forecast)
        self._clock = clock
        self._loaded: dict[str, list[IntensitySeries]] = {}
        self.reports: dict[tuple[str, str], CleanReport] = {}
        self._zone_files: dict[str, list[tuple[str, str]]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DatasetProvider:
        store = CarbonStore(settings.home, settings.carbon_data_dir, factor=settings.carbon_emission_factor)
        fixed = settings.carbon_clock
        clock: Clock | None = None
        if fixed is not None:
            clock = lambda: fixed  # noqa: E731
        return cls(store, step_s=settings.carbon_step_s, forecast=settings.forecast, clock=clock)

    # -- zones and loading ----------------------------------------------------------------
    def _index(self) -> dict[str, list[tuple[str, str]]]:
        """Zone (and alias) -> [(file path, source)] in priority order."""
        if self._zone_files is None:
            index: dict[str, list[tuple[str, str]]] = {}
            for entry in self.store.entries():
                for zone in (*entry.zones, *entry.aliases):
                    index.setdefault(zone, []).append((str(entry.path), entry.source))
            self._zone_files = index
        return self._zone_files

    def zones(self) -> list[str]:
        """Zones the imported data cover (the packaged sample's are :func:`sample.zones`)."""
        return sorted(self._index())

    def load(self, zone: str) -> list[IntensitySeries]:
        """Every source's full series for ``zone`` (cached in memory), in priority order;
        the packaged sample for a zone that nothing imported covers."""
        if zone in self._loaded:
            return self._loaded[zone]
        files = self._index().get(zone)
        packaged = sample.series(zone, self.store.factor) if self.use_sample and not files else None
        if packaged is not None and self.step_s == packaged.step_s:
            self._loaded[zone] = [packaged]
            return self._loaded[zone]
        if not files:
            raise CarbonDataError(
                f"no carbon data for zone {zone!r}; known zones: {', '.join(self.zones()) or 'none'} "
                "(load data with `greengrader carbon import FILES...` or GREENGRADER_CARBON_DATA_DIR)"
            )
        by_source: dict[str, list[RawSeries]] = {}
        for path, _source in files:
            for raw in self.store.load(Path(path)):
                if raw.zone == zone or zone in raw.aliases:
                    by_source.setdefault(raw.source, []).append(raw)
        out = []
        for source, raws in by_source.items():
            series, report = regularize(merge(raws), self.step_s)
            self.reports[(zone, source)] = report
            out.append(series)
        self._loaded[zone] = out
        return out

    def full(self, zone: str) -> IntensitySeries:
        """The highest-priority source's whole series for ``zone``."""
        return self.load(zone)[0]

    def _covering(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        candidates = self.load(zone)
        for series in candidates:
            if series.covers(start, end):
                return series
        spans = "; ".join(f"{s.source} {s.start:%Y-%m-%d %H:%M} .. {s.end:%Y-%m-%d %H:%M}" for s in candidates)
        raise CarbonDataError(
            f"{zone}: no data for {as_utc(start):%Y-%m-%d %H:%M} .. {as_utc(end):%Y-%m-%d %H:%M} UTC (have {spans})"
        )

    # -- CarbonProvider -------------------------------------------------------------------
    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._covering(zone, start, end).window(start, end)

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        at = as_utc(at)
        lookback = timedelta(days=8)  # enough history for the weekly seasonal forecast
        for series in self.load(zone):
            if series.start <= at - lookback and at + timedelta(seconds=horizon_s) <= series.end:
                return self._forecast(series, at, horizon_s)
        return self._forecast(self._covering(zone, at, at + timedelta(seconds=horizon_s)), at, horizon_s)

    def forecast_error(self, zone: str, at: datetime, horizon_s: int) -> list[float]:
        """Measured relative error of this provider's forecasts ``h`` steps ahead (index h,
        from the step in progress), over the forecasts of the last
        :data:`~greengrader.carbon.forecast.ERROR_WINDOW_DAYS` days whose targets are known
        at ``at`` (the regret guard's margin); zeros where there is no history."""
        at = as_utc(at)
        series = self._covering(zone, at, at + timedelta(seconds=1))
        step = series.step_s
        h = max(1, -(-int(horizon_s) // step) + 1)
        u = int((at.timestamp() - series.start_s) // step)
        history = (ERROR_WINDOW_DAYS * 86_400) // step + h + lookback_steps(self.forecast_method, step)
        lo = max(0, u - history)
        err = relative_error(series.values[None, lo: u + 1], self.forecast_method, h, step)
        return [float(x) for x in err[-1, 0].tolist()]

    # -- "now" for historical data ---------------------------------------------------------
    def now(self, zone: str | None = None) -> datetime:
        """The explicit clock, or the wall clock replayed into the zone's latest data year."""
        if self._clock is not None:
            return as_utc(self._clock())
        wall = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        if zone is None:
            return wall
        series = self.full(zone)
        for year in range(series.end.year, series.start.year - 1, -1):
            try:
                candidate = wall.replace(year=year)
            except ValueError:  # 29 February
                candidate = wall.replace(year=year, day=28)
            if series.start <= candidate < series.end:
                return candidate
        return series.end - timedelta(seconds=series.step_s)
