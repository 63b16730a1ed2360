"""The one place that integrates intensity over a run and finds the best start in a window.

A series is a step function on a regular grid (``values[..., k]`` holds over
``[origin + k*step, origin + (k+1)*step)``). The mean intensity of a run that starts at
``t`` and lasts ``r`` seconds is ``(F(t + r) - F(t)) / r`` with ``F`` the running integral,
which is piecewise linear in ``t``. Its minimum over a start window ``[w0, w1]`` therefore
lies where the run's *start* or *end* meets a step boundary, or at a window end:
:func:`candidate_matrix` (many windows) and :func:`interior_list` (one, in plain floats)
enumerate exactly those, and the lowest mean among them is the optimum (the policy kernels
take it, with their tie rule: lowest region, then earliest start).

Everything here takes plain arrays so the data-set series, the online placer's stacked
forecasts, the simulator's grid (its decisions and its charges) and energy accounting
share one implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Slack (seconds) when checking that a run ends inside the data (float round-off).
EDGE_S = 1e-6


def cumulative(values: npt.ArrayLike, step_s: float) -> FloatArray:
    """Running integral (g/kWh x s) at every step boundary: ``[..., n + 1]``, leading 0."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros((*v.shape[:-1], v.shape[-1] + 1), dtype=np.float64)
    np.cumsum(v * step_s, axis=-1, out=out[..., 1:])
    return out


def integral_to(
    origin_s: float, step_s: float, values: FloatArray, cum: FloatArray, t: FloatArray,
    rows: IntArray | None = None,
) -> FloatArray:
    """Integral from ``origin_s`` to each time ``t``; ``rows`` picks the row of 2-D data
    (broadcast against ``t``). Times past the data extend its last step."""
    n = values.shape[-1]
    off = np.asarray(t, dtype=np.float64) - origin_s
    k = np.clip(np.floor(off / step_s), 0, n - 1).astype(np.int64)
    if rows is None:
        out: FloatArray = cum[k] + values[k] * (off - k * step_s)
    else:
        out = cum[rows, k] + values[rows, k] * (off - k * step_s)
    return out


def mean_intensity(
    origin_s: float, step_s: float, values: FloatArray, cum: FloatArray, starts: npt.ArrayLike,
    duration_s: npt.ArrayLike, rows: IntArray | None = None,
) -> FloatArray:
    """Time-weighted mean over ``[t, t + duration)`` for every start ``t`` (vectorised);
    a zero duration gives the value of the step ``t`` is in. No bounds check: see
    :func:`inside`."""
    t = np.asarray(starts, dtype=np.float64)
    d = np.asarray(duration_s, dtype=np.float64)
    pos = np.maximum(d, 1e-9)
    with np.errstate(invalid="ignore"):
        mean = (integral_to(origin_s, step_s, values, cum, t + pos, rows)
                - integral_to(origin_s, step_s, values, cum, t, rows)) / pos
    if np.all(d > 0):
        return mean
    k = np.clip(np.floor((t - origin_s) / step_s), 0, values.shape[-1] - 1).astype(np.int64)
    point = values[k] if rows is None else values[rows, k]
    out: FloatArray = np.where(d > 0, mean, point)
    return out


def inside(origin_s: float, step_s: float, n: int, starts: FloatArray, duration_s: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each run ``[t, t + duration)`` lies inside ``n`` steps of data."""
    with np.errstate(invalid="ignore"):
        out: npt.NDArray[np.bool_] = (starts >= origin_s) & (
            starts + np.maximum(np.asarray(duration_s, dtype=np.float64), 0.0) <= origin_s + n * step_s + EDGE_S
        )
    return out


def mean_one(origin_s: float, step_s: float, values: Sequence[float], cum: Sequence[float], t: float, duration_s: float) -> float:
    """:func:`mean_intensity` for one run in plain floats (``inf`` outside the data): one
    decision touches tens of cells, where numpy's per-call overhead costs more than the sum."""
    n = len(values)
    dur = duration_s if duration_s > 0 else 1e-9
    end = t + dur
    if not (t >= origin_s and end <= origin_s + n * step_s + EDGE_S):
        return math.inf
    off0, off1 = t - origin_s, end - origin_s
    k0 = min(int(off0 // step_s), n - 1)
    k1 = min(int(off1 // step_s), n - 1)
    mean = ((cum[k1] + values[k1] * (off1 - k1 * step_s)) - (cum[k0] + values[k0] * (off0 - k0 * step_s))) / dur
    return mean if math.isfinite(mean) else math.inf


def mean_column(
    origin_s: float, step_s: float, rows: Sequence[Sequence[float]], cums: Sequence[Sequence[float]], t: float,
    duration_s: float,
) -> list[float]:
    """:func:`mean_one` for several series on one grid at one start (the step indices are
    computed once)."""
    n = len(rows[0])
    dur = duration_s if duration_s > 0 else 1e-9
    end = t + dur
    if not (t >= origin_s and end <= origin_s + n * step_s + EDGE_S):
        return [math.inf] * len(rows)
    off0, off1 = t - origin_s, end - origin_s
    k0 = min(int(off0 // step_s), n - 1)
    k1 = min(int(off1 // step_s), n - 1)
    d0, d1 = off0 - k0 * step_s, off1 - k1 * step_s
    out = [((c[k1] + v[k1] * d1) - (c[k0] + v[k0] * d0)) / dur for v, c in zip(rows, cums, strict=True)]
    return [m if math.isfinite(m) else math.inf for m in out]


def interior_list(origin_s: float, step_s: float, w0: float, w1: float, duration_s: float) -> list[float]:
    """:func:`interior_candidates` in plain floats (one decision)."""
    if w1 <= w0:
        return []
    d = max(duration_s, 0.0)
    out = set()
    for shift in (0.0, d):
        k = math.floor((w0 + shift - origin_s) / step_s) + 1
        last = math.ceil((w1 + shift - origin_s) / step_s)
        while k < last:
            t = origin_s + k * step_s - shift
            if w0 < t < w1 and (shift == 0.0 or _end_matters(t, d, step_s, w0)):
                out.add(t)
            k += 1
    return sorted(out)


def _end_matters(t: float, d: float, step_s: float, w0: float) -> bool:
    """Whether a start ``t`` whose run ends on a boundary can beat every other candidate:
    a run no longer than a step that ends on boundary ``b`` lies in the step before ``b``,
    exactly as one starting on that step's own boundary, which is a candidate unless it
    precedes the window."""
    return d > step_s or t + d - step_s < w0


def interior_candidates(origin_s: float, step_s: float, w0: float, w1: float, duration_s: float) -> FloatArray:
    """Starts strictly inside ``(w0, w1)`` where the run starts or ends on a step boundary
    (sorted, unique)."""
    if w1 <= w0:
        return np.empty(0)
    d = max(duration_s, 0.0)
    lo, hi = (w0 - origin_s) / step_s, (w1 - origin_s) / step_s
    on_start = origin_s + np.arange(math.floor(lo) + 1, math.ceil(hi), dtype=np.float64) * step_s
    lo_e, hi_e = (w0 + d - origin_s) / step_s, (w1 + d - origin_s) / step_s
    on_end = origin_s + np.arange(math.floor(lo_e) + 1, math.ceil(hi_e), dtype=np.float64) * step_s - d
    if d <= step_s:
        on_end = on_end[on_end + d - step_s < w0]
    both = np.concatenate([on_start, on_end])
    return np.unique(both[(both > w0) & (both < w1)])


def candidate_matrix(origin_s: float, step_s: float, w0: FloatArray, w1: FloatArray, duration_s: FloatArray) -> FloatArray:
    """Every start at which the mean over ``[t, t + duration)`` can be minimal for ``t`` in
    ``[w0, w1]``, for many windows at once ``[J, S]``: the window ends and the interior
    starts of :func:`interior_candidates`. Sorted per row (the first is ``w0``) with NaN
    padding at the end (a row may repeat a start; equal starts cost the same)."""
    w0, w1, d = (np.asarray(x, dtype=np.float64) for x in (w0, w1, duration_s))
    d = np.maximum(d, 0.0)
    parts = [w0[:, None], np.where(w1 > w0, w1, np.nan)[:, None]]
    for shift in (np.zeros_like(d), d):  # the run's start, then its end, on a boundary
        k0 = np.floor((w0 + shift - origin_s) / step_s) + 1
        count = np.maximum(np.ceil((w1 + shift - origin_s) / step_s) - k0, 0).astype(np.int64)
        width = int(count.max()) if count.size else 0
        if width == 0:
            continue
        cols = np.arange(width)[None, :]
        t = origin_s + (k0[:, None] + cols) * step_s - shift[:, None]
        ok = (cols < count[:, None]) & (t > w0[:, None]) & (t < w1[:, None])
        if shift is d:
            ok &= (d[:, None] > step_s) | (t + d[:, None] - step_s < w0[:, None])
        parts.append(np.where(ok, t, np.nan))
    out: FloatArray = np.sort(np.concatenate(parts, axis=1), axis=1)
    # Trailing all-NaN columns carry nothing.
    keep = int(np.max(np.sum(np.isfinite(out), axis=1))) if out.size else 1
    return out[:, : max(keep, 1)]

