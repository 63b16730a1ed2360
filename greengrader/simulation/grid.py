"""Carbon intensity of several regions on one shared time grid (``values[region, step]``),
built from any :class:`~greengrader.carbon.base.CarbonProvider`'s series."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np
import numpy.typing as npt

from greengrader.carbon import integral
from greengrader.carbon.base import CarbonProvider, IntensitySeries
from greengrader.errors import CarbonDataError, SimulationError
from greengrader.times import as_utc

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class CarbonGrid:
    """Hourly (or finer) intensity of each region, aligned on one grid."""

    regions: tuple[str, ...]
    zones: tuple[str, ...]
    start_s: float
    step_s: int
    values: FloatArray
    sources: tuple[str, ...] = ()
    _errors: dict[tuple[str, int], FloatArray] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.values, dtype=np.float64)
        object.__setattr__(self, "values", v)
        if v.ndim != 2 or v.shape[0] != len(self.regions) or v.shape[1] == 0:
            raise SimulationError("carbon grid must be [regions, steps] with one row per region")
        if len(self.zones) != len(self.regions):
            raise SimulationError("carbon grid needs one zone per region")
        if not np.all(np.isfinite(v)):
            raise SimulationError("carbon grid has missing values (NaN)")

    @cached_property
    def cum(self) -> FloatArray:
        """Running integral per region ``[R, n_steps + 1]`` (see :mod:`greengrader.carbon.integral`)."""
        return integral.cumulative(self.values, self.step_s)

    def forecast_errors(self, method: str, horizon: int) -> FloatArray:
        """:func:`~greengrader.carbon.forecast.relative_error` of ``method`` on this grid
        ``[n_steps, R, >= horizon]``, computed once per method and horizon."""
        from greengrader.carbon.forecast import relative_error

        for (m, h), err in self._errors.items():
            if m == method and h >= horizon:
                return err
        err = relative_error(self.values, method, horizon, self.step_s)
        self._errors[(method, horizon)] = err
        return err

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[1])

    @property
    def end_s(self) -> float:
        return self.start_s + self.step_s * self.n_steps

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_s, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_s, UTC)

    def step_index(self, ts: FloatArray) -> IntArray:
        """Grid step containing each epoch-second time."""
        out: IntArray = np.floor((ts - self.start_s) / self.step_s).astype(np.int64)
        return out

    @classmethod
    def from_series(cls, regions: Sequence[str], series: Sequence[IntensitySeries]) -> CarbonGrid:
        """Align series of the same step on their common span."""
        if not series or len(series) != len(regions):
            raise SimulationError("one intensity series per region is needed")
        step = series[0].step_s
        if any(s.step_s != step for s in series):
            raise SimulationError(
                "regions have different time steps: "
                + ", ".join(f"{s.zone}={s.step_s}s" for s in series)
            )
        start = max(s.start_s for s in series)
        end = min(s.end_s for s in series)
        if end - start < step:
            raise SimulationError("the regions' carbon data do not overlap in time")
        n = int((end - start) // step)
        rows = []
        for s in series:
            off = (start - s.start_s) / step
            if off != int(off):
                raise SimulationError(f"{s.zone}: series is not aligned to the common {step}s grid")
            rows.append(s.values[int(off): int(off) + n])
        return cls(tuple(regions), tuple(s.zone for s in series), float(start), step,
                   np.vstack(rows), tuple(s.source for s in series))

    @classmethod
    def load(
        cls, provider: CarbonProvider, zones: Mapping[str, str], start: datetime, end: datetime,
        *, lookback: timedelta = timedelta(days=8),
    ) -> CarbonGrid:
        """Series for ``zones`` (region -> zone) over ``[start, end)``, plus ``lookback`` of
        history for the forecasts when the data have it."""
        start, end = as_utc(start), as_utc(end)
        series = []
        for zone in zones.values():
            try:
                series.append(provider.series(zone, start - lookback, end))
            except CarbonDataError:
                series.append(provider.series(zone, start, end))
        return cls.from_series(list(zones), series)

    def mean_by_hour_of_day(self, start_s: float | None = None, end_s: float | None = None) -> FloatArray:
        """Mean intensity per region and UTC hour of day ``[R, 24]`` over a span."""
        lo = 0 if start_s is None else max(0, int((start_s - self.start_s) // self.step_s))
        hi = self.n_steps if end_s is None else min(self.n_steps, int(np.ceil((end_s - self.start_s) / self.step_s)))
        ts = self.start_s + self.step_s * np.arange(lo, hi)
        hour = ((ts // 3600) % 24).astype(np.int64)
        out = np.zeros((len(self.regions), 24))
        counts = np.bincount(hour, minlength=24).astype(np.float64)
        for r in range(len(self.regions)):
            out[r] = np.bincount(hour, weights=self.values[r, lo:hi], minlength=24) / np.maximum(counts, 1)
        out[:, counts == 0] = np.nan
        return out
