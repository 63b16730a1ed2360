"""The candidate regions' forecasts as one matrix, and the mean intensity of a run at each
candidate start: placement's numeric kernel over :mod:`greengrader.carbon.integral`.

The batch path (:meth:`ForecastStack.mean`) is numpy over ``[jobs, regions, starts]``; the
single-decision path (:meth:`ForecastStack.means_one`) is plain floats, since one decision
touches ~R x S cells, where numpy's per-call overhead costs more than the arithmetic.
Both call the same integral, so they give the same answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from greengrader.carbon import integral
from greengrader.carbon.base import IntensitySeries
from greengrader.scheduling.policies import FloatArray


@dataclass(frozen=True)
class ForecastStack:
    """The candidate regions' forecasts; stacked into one matrix when they share a grid."""

    series: list[IntensitySeries | None]
    errors: dict[str, str]
    grid: tuple[float, int] | None = None  # (start epoch s, step s) when stacked
    values: FloatArray | None = None  # [R, N], NaN rows for regions without data
    cum: FloatArray | None = None  # [R, N + 1] running integral (g/kWh x s)
    # Measured relative forecast error per region and steps ahead of the first forecast
    # step (the regret guard); None when the provider measures none.
    rel_error: list[list[float]] | None = None
    # Means at grid-step starts for the single-decision path, keyed by the window's steps,
    # runtime and queue waits: they only change when the window crosses a step boundary.
    _grid_means: dict[tuple[float, int, float, tuple[float, ...]], list[list[float]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(
        cls, series: list[IntensitySeries | None], errors: dict[str, str], rel_error: list[list[float]] | None = None,
    ) -> ForecastStack:
        present = [s for s in series if s is not None]
        if not present or len({(s.start_s, s.step_s) for s in present}) != 1:
            return cls(series, errors)
        n = min(len(s) for s in present)
        values = np.full((len(series), n), np.nan)
        for i, s in enumerate(series):
            if s is not None:
                values[i] = s.values[:n]
        cum = integral.cumulative(values, present[0].step_s)
        return cls(series, errors, (present[0].start_s, present[0].step_s), values, cum, rel_error)

    def guard(self, starts: Sequence[float], margin: float) -> list[list[float]] | None:
        """Cost factor ``[R][S]`` of the regret guard: ``1 + margin x`` the measured error at
        each start's horizon (None: no guard)."""
        if margin <= 0 or self.rel_error is None or self.grid is None:
            return None
        start_s, step = self.grid
        ahead = [max(0, int((t - start_s) // step)) if t == t else 0 for t in starts]
        return [[1.0 + margin * row[min(h, len(row) - 1)] for h in ahead] if row else [1.0] * len(ahead)
                for row in self.rel_error]

    @cached_property
    def _end_s(self) -> float:
        return min((s.end_s for s in self.series if s is not None), default=math.inf)

    def covers(self, until_s: float) -> bool:
        return self._end_s >= until_s

    def mean(self, starts: FloatArray, runtime_s: FloatArray) -> FloatArray:
        """Mean intensity over ``[t, t + runtime)`` for ``starts[J, R, S]`` and
        ``runtime[J, 1, 1]`` (inf where there is no data or the start is NaN padding)."""
        if self.grid is None or self.values is None or self.cum is None:
            return self._mean_each(starts, runtime_s)
        start_s, step = self.grid
        values, cum = self.values, self.cum
        rows = np.arange(starts.shape[1])[None, :, None]
        clean = np.nan_to_num(starts)
        mean = integral.mean_intensity(start_s, step, values, cum, clean, runtime_s, rows)
        ok = integral.inside(start_s, step, values.shape[1], starts, runtime_s) & np.isfinite(mean)
        out: FloatArray = np.where(ok, mean, np.inf)
        return out

    @cached_property
    def _lists(self) -> tuple[list[list[float]], list[list[float]]]:
        # Plain floats: one decision touches ~R x S cells, where numpy's per-call overhead
        # costs more than the arithmetic.
        assert self.values is not None and self.cum is not None
        return self.values.tolist(), self.cum.tolist()

    def _mean_one(self, r: int, eff: float, dur: float) -> float:
        """:meth:`mean` for one cell (the same integral, so the same answer)."""
        assert self.grid is not None
        start_s, step = self.grid
        values, cum = self._lists
        return integral.mean_one(start_s, step, values[r], cum[r], eff, dur)

    def _column(self, eff: float, dur: float) -> list[float]:
        """:meth:`_mean_one` for every region at one start."""
        assert self.grid is not None
        start_s, step = self.grid
        values, cum = self._lists
        return integral.mean_column(start_s, step, values, cum, eff, dur)

    def _means_at(self, t: float, dur: float, waits: Sequence[float]) -> list[float]:
        if all(w == waits[0] for w in waits):  # the usual case: no queue waits
            return self._column(t + waits[0], dur)
        return [self._mean_one(r, t + wait, dur) for r, wait in enumerate(waits)]

    def means_one(
        self, w0: float, w1: float, runtime_s: float, waits: Sequence[float]
    ) -> tuple[list[float], list[list[float]]]:
        """Candidate starts ``[S]`` and mean intensities ``[R][S]`` for one job on the grid
        (what :meth:`~greengrader.scheduling.placement.Placer._starts` and :meth:`mean` give
        for a batch of one)."""
        assert self.grid is not None
        start_s, step = self.grid
        dur = max(runtime_s, 1e-9)
        inner = inner_starts(start_s, step, w0, w1, runtime_s, waits)
        # The interior starts sit on the grid: their means only change when the window
        # gains or loses one, so they are cached; the window ends are computed each time.
        key = (inner[0] if inner else 0.0, len(inner), runtime_s, tuple(waits))
        later = self._grid_means.get(key)
        if later is None:
            columns = [self._means_at(g, dur, waits) for g in inner]
            later = [list(row) for row in zip(*columns, strict=True)] if columns else [[] for _ in waits]
            if len(self._grid_means) > 4096:
                self._grid_means.clear()
            self._grid_means[key] = later
        first = self._means_at(w0, dur, waits)
        if w1 <= w0:
            return [w0], [[m] for m in first]
        last = self._means_at(w1, dur, waits)
        return [w0, *inner, w1], [[m, *rest, z] for m, rest, z in zip(first, later, last, strict=True)]

    def _mean_each(self, starts: FloatArray, runtime_s: FloatArray) -> FloatArray:
        out = np.full(starts.shape, np.inf)
        dur = np.broadcast_to(runtime_s, starts.shape)
        for i, s in enumerate(self.series):
            if s is None:
                continue
            eff, d = starts[:, i, :], dur[:, i, :]
            with np.errstate(invalid="ignore"):
                inside = (eff >= s.start_s) & (eff + d <= s.end_s + 1e-6)
            for j, k in zip(*np.nonzero(inside), strict=True):
                out[j, i, k] = s.mean_over_many(np.array([eff[j, k]]), float(d[j, k]))[0]
        return out


def inner_starts(
    origin_s: float, step_s: float, w0: float, w1: float, runtime_s: float, waits: Sequence[float]
) -> list[float]:
    """Interior candidate starts of one window for every distinct queue wait (sorted)."""
    distinct = set(waits)
    if len(distinct) == 1:
        (wait,) = distinct
        if wait == 0:
            return integral.interior_list(origin_s, step_s, w0, w1, runtime_s)
        return [t - wait for t in integral.interior_list(origin_s, step_s, w0 + wait, w1 + wait, runtime_s)]
    merged = np.concatenate([
        integral.interior_candidates(origin_s, step_s, w0 + w, w1 + w, runtime_s) - w for w in sorted(distinct)
    ])
    return [float(t) for t in np.unique(merged[(merged > w0) & (merged < w1)]).tolist()]
