"""Turn parsed points into a regular :class:`IntensitySeries` on a common step.

Duplicates are dropped (first kept), gaps on a regular grid are filled by linear
interpolation, irregular points are held until the next point, and the result is averaged
(time-weighted) onto bins of ``step_s`` aligned to the epoch. Everything done is reported
in the series ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from greengrader.carbon.base import IntensitySeries, Signal
from greengrader.carbon.formats import RawSeries, parse_time
from greengrader.errors import CarbonDataError


@dataclass
class CleanReport:
    """What regularising had to fix (for ``carbon import`` and tests)."""

    duplicates: int = 0
    conflicting_duplicates: int = 0
    missing: int = 0
    longest_gap_s: int = 0
    nan: int = 0
    notes: list[str] = field(default_factory=list)

    def as_notes(self) -> list[str]:
        out = list(self.notes)
        if self.duplicates:
            out.append(
                f"{self.duplicates} duplicate timestamps dropped "
                f"({self.conflicting_duplicates} with a different value; first kept)"
            )
        if self.nan:
            out.append(f"{self.nan} empty values treated as missing")
        if self.missing:
            out.append(
                f"{self.missing} missing steps filled by linear interpolation "
                f"(longest gap {self.longest_gap_s / 3600:g} h)"
            )
        return out


def _dedupe(raw: RawSeries, report: CleanReport) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    order = np.argsort(raw.ts, kind="stable")
    ts, vals = raw.ts[order], raw.values[order]
    dup = np.zeros(ts.size, dtype=bool)
    dup[1:] = ts[1:] == ts[:-1]
    if dup.any():
        # Compare each duplicate with the first value at its timestamp.
        first_idx = np.searchsorted(ts, ts[dup], side="left")
        report.duplicates = int(dup.sum())
        report.conflicting_duplicates = int(np.sum(~np.isclose(vals[dup], vals[first_idx], equal_nan=True)))
    ts, vals = ts[~dup], vals[~dup]
    nan = np.isnan(vals)
    report.nan = int(nan.sum())
    if nan.all():
        raise CarbonDataError(f"{raw.zone}: no values")
    return ts[~nan], vals[~nan]


def _native_step(raw: RawSeries, ts: npt.NDArray[np.int64]) -> int:
    if raw.step_hint_s:
        return raw.step_hint_s
    diffs = np.diff(ts)
    return int(np.median(diffs)) if diffs.size else 3600


def _breakpoints(
    ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64], step: int, report: CleanReport
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """A step function as (breakpoints, values); the last value holds for one ``step``."""
    off = ts - ts[0]
    if np.all(off % step == 0):
        grid = ts[0] + np.arange(int(off[-1] // step) + 1, dtype=np.int64) * step
        present = np.zeros(grid.size, dtype=bool)
        present[off // step] = True
        report.missing = int((~present).sum())
        if report.missing:
            gaps = np.diff(ts) - step
            report.longest_gap_s = int(gaps.max())
            vals = np.interp(grid.astype(np.float64), ts.astype(np.float64), vals)
        return grid, vals
    report.notes.append(f"irregular timestamps (median step {step} s): each value held until the next")
    return ts, vals


def _resample(
    bp: npt.NDArray[np.int64], vals: npt.NDArray[np.float64], end: int, step_s: int
) -> tuple[int, npt.NDArray[np.float64]]:
    """Time-weighted mean of the step function on epoch-aligned bins of ``step_s``."""
    widths = np.diff(np.append(bp, end)).astype(np.float64)
    cum = np.concatenate(([0.0], np.cumsum(vals * widths)))

    def integral(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        k = np.clip(np.searchsorted(bp, x, side="right") - 1, 0, bp.size - 1)
        out: npt.NDArray[np.float64] = cum[k] + vals[k] * (x - bp[k])
        return out

    first = (int(bp[0]) // step_s) * step_s
    n = -(-(end - first) // step_s)
    edges = first + np.arange(n + 1, dtype=np.float64) * step_s
    lo, hi = np.maximum(edges[:-1], bp[0]), np.minimum(edges[1:], end)
    return first, (integral(hi) - integral(lo)) / (hi - lo)


def regularize(raw: RawSeries, step_s: int = 3600) -> tuple[IntensitySeries, CleanReport]:
    """Clean ``raw`` and put it on the common ``step_s`` grid."""
    report = CleanReport(notes=list(raw.notes))
    ts, vals = _dedupe(raw, report)
    step = _native_step(raw, ts)
    bp, bvals = _breakpoints(ts, vals, step, report)
    end = int(bp[-1]) + step
    if step == step_s and int(bp[0]) % step_s == 0:
        start, values = int(bp[0]), bvals
    else:
        start, values = _resample(bp, bvals, end, step_s)
    series = IntensitySeries(
        zone=raw.zone, start=datetime.fromtimestamp(start, UTC), step_s=step_s, values=values,
        signal=raw.signal, source=raw.source, forecast=False, notes=tuple(report.as_notes()),
    )
    return series, report


def merge(raws: list[RawSeries]) -> RawSeries:
    """Concatenate several files' points for one zone and source (e.g. zone-years)."""
    if not raws:
        raise CarbonDataError("merge(): nothing to merge")
    first = raws[0]
    return RawSeries(
        zone=first.zone,
        ts=np.concatenate([r.ts for r in raws]),
        values=np.concatenate([r.values for r in raws]),
        signal=first.signal, source=first.source, fmt=first.fmt, step_hint_s=first.step_hint_s,
        notes=[n for r in raws for n in r.notes],
    )


def from_points(
    zone: str, times: list[str] | list[int], values: list[float], *, signal: Signal, source: str,
    step_s: int | None = None, forecast: bool = False, scale: float = 1.0,
) -> IntensitySeries:
    """A series from API points (ISO strings or epoch seconds), kept at their native step."""
    if not times:
        raise CarbonDataError(f"{source}: no data points for {zone}")
    ts = np.array([t if isinstance(t, int) else parse_time(t) for t in times], dtype=np.int64)
    raw = RawSeries(zone, ts, np.asarray(values, dtype=np.float64) * scale, signal, source, "watttime-wide", step_s)
    native = step_s or (int(np.median(np.diff(np.sort(ts)))) if ts.size > 1 else 3600)
    series, _ = regularize(raw, native)
    return IntensitySeries(
        zone=zone, start=series.start, step_s=series.step_s, values=series.values, signal=signal,
        source=source, forecast=forecast, notes=series.notes,
    )
