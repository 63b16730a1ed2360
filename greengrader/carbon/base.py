"""The carbon provider Protocol and the intensity series every provider returns.

A series is a step function: ``values[i]`` holds over ``[start + i*step, start + (i+1)*step)``.
All times are timezone-aware UTC ``datetime``; values are gCO2eq/kWh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from greengrader.errors import CarbonDataError

Signal = Literal["average", "marginal"]
FloatArray = npt.NDArray[np.float64]


def as_utc(t: datetime) -> datetime:
    """Return ``t`` in UTC; naive datetimes are rejected (ambiguous across DST)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise CarbonDataError(f"naive datetime {t.isoformat()} (carbon times must be timezone-aware)")
    return t.astimezone(UTC)


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
        out = np.zeros(len(self) + 1, dtype=np.float64)
        np.cumsum(self.values * self.step_s, out=out[1:])
        return out

    def _integral_to(self, ts: FloatArray) -> FloatArray:
        """Integral of the step function from the series start to each time in ``ts`` (s)."""
        off = ts - self.start_s
        k = np.minimum((off // self.step_s).astype(np.int64), len(self) - 1)
        out: FloatArray = self._cum[k] + self.values[k] * (off - k * self.step_s)
        return out

    def mean_over_many(self, starts_s: npt.ArrayLike, duration_s: float) -> FloatArray:
        """Vectorised :meth:`mean_over` for epoch-second start times."""
        starts = np.asarray(starts_s, dtype=np.float64)
        if duration_s <= 0:
            k = ((starts - self.start_s) // self.step_s).astype(np.int64)
            return self.values[np.clip(k, 0, len(self) - 1)]
        ends = starts + duration_s
        if starts.size and (starts.min() < self.start_s or ends.max() > self.end_s + 1e-6):
            raise CarbonDataError(
                f"{self.zone}: query outside the data ({self.start.isoformat()} .. {self.end.isoformat()})"
            )
        return (self._integral_to(ends) - self._integral_to(starts)) / duration_s

    def mean_over(self, start: datetime, duration_s: float) -> float:
        """Time-weighted mean intensity over ``[start, start + duration_s)``."""
        s = epoch_s(start)
        if duration_s <= 0:
            return float(self.values[self._index(s)])
        e = s + duration_s
        if s < self.start_s or e > self.end_s + 1e-6:
            raise CarbonDataError(
                f"{self.zone}: query outside the data ({self.start.isoformat()} .. {self.end.isoformat()})"
            )
        return (self._integral_at(e) - self._integral_at(s)) / duration_s

    def _integral_at(self, x: float) -> float:
        off = x - self.start_s
        k = min(int(off // self.step_s), self.values.size - 1)
        return float(self._cum[k]) + float(self.values[k]) * (off - k * self.step_s)

    def integrate_g(self, start: datetime, duration_s: float, kwh: float) -> float:
        """gCO2eq for ``kwh`` drawn uniformly over ``[start, start + duration_s)``."""
        return kwh * self.mean_over(start, duration_s)


@dataclass(frozen=True)
class BestSlot:
    """Where and when a job of a given duration has the lowest mean intensity."""

    zone: str
    start: datetime
    mean_intensity: float


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

    def best(
        self, zones: Sequence[str], window_start: datetime, window_end: datetime, duration_s: int
    ) -> BestSlot:
        """Lowest-mean (zone, start) for a job that runs inside the window."""
        ...


def candidate_starts(series: IntensitySeries, window_start: float, window_end: float, duration_s: float) -> FloatArray:
    """Start times worth trying: the window start and every step boundary that still fits.

    Intensity is constant within a step, so the optimum always starts at the window start or
    at a step boundary. When the window is shorter than the job only its start is tried.
    """
    last = max(window_start, window_end - duration_s)
    s0, step = series.start_s, series.step_s
    first_k = math.floor((window_start - s0) / step) + 1
    last_k = math.floor((last - s0) / step)
    grid = s0 + np.arange(first_k, last_k + 1, dtype=np.float64) * step
    return np.concatenate(([window_start], grid))


def best_of(
    series_by_zone: Mapping[str, IntensitySeries],
    window_start: datetime,
    window_end: datetime,
    duration_s: float,
) -> BestSlot:
    """Shared ``best`` implementation over already-fetched series (ties: first zone, earliest)."""
    ws, we = epoch_s(window_start), epoch_s(window_end)
    best: BestSlot | None = None
    for zone, s in series_by_zone.items():
        starts = candidate_starts(s, ws, we, duration_s)
        means = s.mean_over_many(starts, duration_s)
        i = int(np.argmin(means))
        if best is None or means[i] < best.mean_intensity - 1e-9:
            best = BestSlot(zone, datetime.fromtimestamp(float(starts[i]), UTC), float(means[i]))
    if best is None:
        raise CarbonDataError("best(): no zones given")
    return best


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
