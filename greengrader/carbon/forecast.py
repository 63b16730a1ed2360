"""Forecasts over a historical series, for data-set mode and the simulator.

A forecast issued during grid step ``u`` knows every step up to and including ``u``: the
step in progress is the **nowcast** (the latest observation, what Electricity Maps'
``latest`` or WattTime's signal index gives; in replay, the actual value of that step), and
only the steps after it are predicted, from data up to ``u`` and nothing later:

- ``oracle``: the actual values (perfect foresight; for evaluating policies only),
- ``persistence``: the nowcast, held flat,
- ``seasonal-day`` / ``seasonal-week``: the value at the same time one day / one week
  earlier (going back whole periods until the value is known),
- ``blend``: the mean of the same hour over the last seven days, corrected by how far the
  nowcast sits from its own seven-day same-hour mean (a correction that fades with the
  horizon); the online default (see ``docs/simulation.md`` for its measured quality).

:func:`predict` is the one implementation (vectorised over issue steps and regions);
:func:`forecast` wraps it for one series and :func:`mape` measures it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from greengrader.carbon.base import IntensitySeries, epoch_s
from greengrader.errors import CarbonDataError, ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DAY_S = 86_400
#: Days in the same-hour means of ``blend`` and ``ridge``.
BLEND_DAYS = 7
#: Per-step decay of the nowcast's level correction in ``blend``.
BLEND_DECAY = 0.95
#: Days of past forecasts whose error sets the regret guard's margin.
ERROR_WINDOW_DAYS = 28
METHODS: tuple[str, ...] = ("oracle", "persistence", "seasonal-day", "seasonal-week", "blend", "ridge")
DEFAULT_METHOD = "blend"


def check(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"GREENGRADER_FORECAST: unknown forecast {method!r} (known: {', '.join(METHODS)})")
    return method


def lookback_steps(method: str, step_s: int) -> int:
    """Steps of history before the issue step that a ``method`` forecast reads."""
    day = max(1, DAY_S // step_s)
    return {
        "oracle": 0, "persistence": 0, "seasonal-day": day, "seasonal-week": 7 * day,
        "blend": BLEND_DAYS * day + 1, "ridge": BLEND_DAYS * day + 1,
    }[check(method)]


def _seasonal(values: FloatArray, issue: IntArray, target: IntArray, period: int) -> FloatArray:
    lag = -(-(target - issue[:, None]) // period) * period  # whole periods back to known data
    out: FloatArray = values[:, np.clip(target - lag, 0, values.shape[1] - 1)]
    return out


def same_hour_mean(values: FloatArray, target: IntArray, issue: IntArray, day: int) -> FloatArray:
    """Mean of the last ``BLEND_DAYS`` known values at ``target``'s time of day ``[R, *target]``."""
    first = -(-(target - issue[:, None]) // day)  # whole days back to known data (>= 0)
    first = np.maximum(first, 1)
    acc = np.zeros((values.shape[0], *target.shape))
    for k in range(BLEND_DAYS):
        acc += values[:, np.clip(target - (first + k) * day, 0, values.shape[1] - 1)]
    out: FloatArray = acc / BLEND_DAYS
    return out


def _blend(values: FloatArray, issue: IntArray, target: IntArray, day: int) -> FloatArray:
    base = same_hour_mean(values, target, issue, day)
    level = values[:, issue] - same_hour_mean(values, issue[:, None], issue - 1, day)[..., 0]
    h = target - issue[:, None]
    out: FloatArray = base + level[:, :, None] * BLEND_DECAY ** h[None, :, :]
    return out


def predict(values: FloatArray, issue: IntArray, horizon: int, method: str, step_s: int = 3600) -> FloatArray:
    """Forecast ``[U, R, horizon]`` of ``values[R, N]`` issued in each step ``issue[U]``:
    column 0 is the nowcast (the step in progress), column ``h`` the step ``h`` later.
    Reads ``values[:, : issue + 1]`` only (``oracle`` excepted, which repeats the last step
    past the data); history missing before the data start is read from its first step."""
    check(method)
    n = values.shape[1]
    issue = np.asarray(issue, dtype=np.int64)
    target = issue[:, None] + np.arange(max(horizon, 1))[None, :]  # [U, H]
    day = max(1, DAY_S // step_s)
    if method == "oracle":
        out = values[:, np.minimum(target, n - 1)]
    elif method == "persistence":
        out = np.broadcast_to(values[:, issue][:, :, None], (values.shape[0], *target.shape))
    elif method in ("seasonal-day", "seasonal-week"):
        out = _seasonal(values, issue, target, day if method == "seasonal-day" else 7 * day)
    elif method == "blend":
        out = _blend(values, issue, target, day)
    else:
        from greengrader.carbon.learned import ridge_predict

        out = ridge_predict(values, issue, target, day)
    out = np.array(out.transpose(1, 0, 2), dtype=np.float64)
    out[:, :, 0] = values[:, issue].T  # the nowcast
    return np.maximum(out, 0.0)


def relative_error(values: FloatArray, method: str, horizon: int, step_s: int = 3600,
                   window_days: int = ERROR_WINDOW_DAYS) -> FloatArray:
    """Measured error ``[N, R, horizon]``: at step ``u``, the mean of |forecast - actual| /
    actual of ``method``'s forecasts ``h`` steps ahead over the last ``window_days`` whose
    target was known by ``u`` (issued in steps ``u - h - window + 1 .. u - h``); 0 at h = 0
    (the nowcast) and where no such forecast exists yet."""
    n = values.shape[1]
    h = max(horizon, 1)
    issues = np.arange(n, dtype=np.int64)
    pred = predict(values, issues, h, method, step_s)  # [N, R, H]
    target = issues[:, None] + np.arange(h)[None, :]
    actual = values[:, np.minimum(target, n - 1)].transpose(1, 0, 2)
    valid = (target < n)[:, None, :] & (actual > 0)
    err = np.where(valid, np.abs(pred - actual) / np.where(actual > 0, actual, 1.0), 0.0)
    cum_e = np.concatenate([np.zeros((1, *err.shape[1:])), np.cumsum(err, axis=0)])
    cum_n = np.concatenate([np.zeros((1, *err.shape[1:])), np.cumsum(valid, axis=0)])
    window = max(1, window_days * DAY_S // step_s)
    hi = np.clip(issues[:, None] - np.arange(h)[None, :] + 1, 0, n)  # [N, H]: issues <= u - h
    lo = np.maximum(hi - window, 0)
    r = np.arange(values.shape[0])[None, :, None]
    hcol = np.arange(h)[None, None, :]
    total = cum_e[hi[:, None, :], r, hcol] - cum_e[lo[:, None, :], r, hcol]
    count = cum_n[hi[:, None, :], r, hcol] - cum_n[lo[:, None, :], r, hcol]
    out: FloatArray = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    out[:, :, 0] = 0.0
    return out


def forecast(actual: IntensitySeries, at: datetime, horizon_s: int, method: str = DEFAULT_METHOD) -> IntensitySeries:
    """The ``method`` forecast issued at ``at`` for ``[at, at + horizon_s)``, on the series'
    grid from the step in progress (which holds the nowcast)."""
    check(method)
    step = actual.step_s
    at_s = epoch_s(at)
    first = math.floor((at_s - actual.start_s) / step)
    last = math.ceil((at_s + max(horizon_s, 1) - actual.start_s) / step)
    # blend (and ridge) degrade gracefully on a short history; the seasonal methods need it.
    need = 0 if method in ("blend", "ridge") else lookback_steps(method, step)
    known = need <= first < len(actual)
    if not known or (method == "oracle" and last > len(actual)):
        raise CarbonDataError(
            f"{actual.zone}: not enough data for a {method} forecast at {at.isoformat()} "
            f"(data {actual.start.isoformat()} .. {actual.end.isoformat()})"
        )
    values = predict(actual.values[None, :], np.array([first]), last - first, method, step)[0, 0]
    return IntensitySeries(
        zone=actual.zone,
        start=datetime.fromtimestamp(actual.start_s + first * step, UTC),
        step_s=step,
        values=values,
        signal=actual.signal,
        source=f"{actual.source}+{method}",
        forecast=method != "oracle",
    )


def mape(actual: IntensitySeries, method: str, horizon_s: int = DAY_S, horizons: range | None = None) -> float:
    """Mean absolute percentage error (%) over every issue step and the steps 1..H ahead
    (the nowcast is exact by definition and left out; actual values of 0 are skipped)."""
    check(method)
    h = max(1, horizon_s // actual.step_s)
    ahead = horizons or range(1, h + 1)
    need = lookback_steps(method, actual.step_s)
    issue = np.arange(need, len(actual) - ahead.stop, dtype=np.int64)
    if issue.size == 0:
        raise CarbonDataError(f"{actual.zone}: series too short to evaluate {method}")
    values = actual.values[None, :]
    pred = predict(values, issue, ahead.stop, method, actual.step_s)[:, 0, :]
    target = issue[:, None] + np.arange(ahead.stop)[None, :]
    a, f = values[0, target][:, ahead.start:], pred[:, ahead.start:]
    ok = a != 0
    return float(np.mean(np.abs(f[ok] - a[ok]) / np.abs(a[ok])) * 100.0)


Forecaster = Callable[[IntensitySeries, datetime, int], IntensitySeries]


def forecaster(method: str) -> Forecaster:
    """A forecast function for ``method`` (validated now, not at first use)."""
    check(method)
    return lambda actual, at, horizon_s: forecast(actual, at, horizon_s, method)
