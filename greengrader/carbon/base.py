"""The carbon provider Protocol and the intensity series every provider returns.

A series is a step function: ``values[i]`` holds over ``[start + i*step, start + (i+1)*step)``.
All times are timezone-aware UTC ``datetime``; values are gCO2eq/kWh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from greengrader.carbon import integral
from greengrader.errors import CarbonDataError
from greengrader.times import as_utc

Signal = Literal["average", "marginal"]
FloatArray = npt.NDArray[np.float64]


def epoch_s(t: datetime) -> float:
    return as_utc(t).timestamp()


@dataclass(frozen=True, eq=False)
class IntensitySeries:
    """Carbon intensity of one zone on a regular grid (a step function)."""

    zone: str
    start: datetime
    step_s: int
    values: FloatArray
    signal: Signal = "average"
    source: str = ""
    forecast: bool = False
    # Import notes (gaps filled, duplicates dropped...) carried for reporting only.
    notes: tuple[str, ...] = field(default=())
    _start_s: float = field(init=False, repr=False, default=0.0)
    _end_s: float = field(init=False, repr=False, default=0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        values = np.ascontiguousarray(self.values, dtype=np.float64)
        object.__setattr__(self, "values", values)
        if self.step_s <= 0:
            raise CarbonDataError(f"{self.zone}: step must be positive, got {self.step_s}")
        if values.ndim != 1 or values.size == 0:
            raise CarbonDataError(f"{self.zone}: a series needs a non-empty 1-D value array")
        # Plain floats: the hot query paths avoid datetime arithmetic.
        object.__setattr__(self, "_start_s", self.start.timestamp())
        object.__setattr__(self, "_end_s", self._start_s + self.step_s * values.size)

    def __len__(self) -> int:
        return int(self.values.size)

    @property
    def start_s(self) -> float:
        return self._start_s

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.step_s * len(self))

    @property
    def end_s(self) -> float:
        return self._end_s

    def times(self) -> npt.NDArray[np.datetime64]:
        """Start of every step as ``datetime64[s]`` (UTC)."""
        first = np.datetime64(int(self.start_s), "s")
        return first + np.arange(len(self), dtype=np.int64) * np.timedelta64(self.step_s, "s")

    def covers(self, start: datetime, end: datetime) -> bool:
        return self.start <= as_utc(start) and as_utc(end) <= self.end

    def at(self, t: datetime) -> float:
        """Value of the step function at ``t``."""
        return float(self.values[self._index(epoch_s(t))])

    def _index(self, ts: float) -> int:
        if not self.start_s <= ts < self.end_s:
            raise CarbonDataError(
                f"{self.zone}: {datetime.fromtimestamp(ts, UTC).isoformat()} outside the data "
                f"({self.start.isoformat()} .. {self.end.isoformat()})"
            )
        return int((ts - self.start_s) // self.step_s)

    def window(self, start: datetime, end: datetime) -> IntensitySeries:
        """The steps that overlap ``[start, end)`` (aligned to the grid)."""
        s, e = epoch_s(start), epoch_s(end)
        if e <= s:
            raise CarbonDataError(f"{self.zone}: empty window {start.isoformat()} .. {end.isoformat()}")
        i = self._index(s)
        j = int(np.ceil((min(e, self.end_s) - self.start_s) / self.step_s))
        return IntensitySeries(
            zone=self.zone,
            start=self.start + timedelta(seconds=i * self.step_s),
            step_s=self.step_s,
            values=self.values[i:j].copy(),
            signal=self.signal,
            source=self.source,
            forecast=self.forecast,
            notes=self.notes,
        )

    @cached_property
    def _cum(self) -> FloatArray:
        # _cum[k] = integral (g/kWh * s) from the series start to step k.
        return integral.cumulative(self.values, self.step_s)

    @cached_property
    def _lists(self) -> tuple[list[float], list[float]]:
        return self.values.tolist(), self._cum.tolist()

    def _check_inside(self, starts: FloatArray, duration_s: float) -> None:
        if starts.size and not np.all(integral.inside(self.start_s, self.step_s, len(self), starts, duration_s)):
            raise CarbonDataError(
                f"{self.zone}: query outside the data ({self.start.isoformat()} .. {self.end.isoformat()})"
            )

    def mean_over_many(self, starts_s: npt.ArrayLike, duration_s: float) -> FloatArray:
        """Vectorised :meth:`mean_over` for epoch-second start times."""
        starts = np.asarray(starts_s, dtype=np.float64)
        self._check_inside(starts, duration_s)
        return integral.mean_intensity(self.start_s, self.step_s, self.values, self._cum, starts, duration_s)

    def mean_over(self, start: datetime, duration_s: float) -> float:
        """Time-weighted mean intensity over ``[start, start + duration_s)``."""
        s = epoch_s(start)
        if duration_s <= 0:
            return float(self.values[self._index(s)])
        values, cum = self._lists
        mean = integral.mean_one(self.start_s, self.step_s, values, cum, s, duration_s)
        if mean == math.inf:
            raise CarbonDataError(
                f"{self.zone}: query outside the data ({self.start.isoformat()} .. {self.end.isoformat()})"
            )
        return mean

    def integrate_g(self, start: datetime, duration_s: float, kwh: float) -> float:
        """gCO2eq for ``kwh`` drawn uniformly over ``[start, start + duration_s)``."""
        return kwh * self.mean_over(start, duration_s)


@runtime_checkable
class CarbonProvider(Protocol):
    """A source of carbon intensity (data set, HTTP API, embedded averages)."""

    name: str

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """Historical/actual intensity over ``[start, end)``."""
        ...

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        """Intensity expected over ``[at, at + horizon_s)`` as known at ``at``."""
        ...


def constant_series(
    zone: str, value: float, start: datetime, end: datetime, *, source: str, forecast: bool = False,
    step_s: int = 3600, signal: Signal = "average",
) -> IntensitySeries:
    """A flat series (embedded averages, fallbacks), aligned to ``step_s``."""
    s = np.floor(epoch_s(start) / step_s) * step_s
    n = max(1, int(np.ceil((epoch_s(end) - s) / step_s)))
    return IntensitySeries(
        zone=zone, start=datetime.fromtimestamp(s, UTC), step_s=step_s,
        values=np.full(n, value, dtype=np.float64), signal=signal, source=source, forecast=forecast,
    )
