"""Forecasts over a historical series, for data-set mode (no provider forecast available).

A forecast issued at ``at`` may only use steps that ended by ``at``:

- ``oracle``: the actual values (perfect foresight; for evaluating policies only),
- ``persistence``: the last known value, held flat,
- ``seasonal-day`` / ``seasonal-week``: the value at the same time one day / one week
  earlier (going back whole periods until the value is known).

:func:`mape` measures each method's error on a series over every issue time.
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
# Method name -> seasonal period in seconds (0: persistence, -1: oracle).
METHODS: dict[str, int] = {
    "oracle": -1,
    "persistence": 0,
    "seasonal-day": 86_400,
    "seasonal-week": 7 * 86_400,
}


def _check(method: str) -> int:
    if method not in METHODS:
        raise ConfigError(f"GREENGRADER_FORECAST: unknown forecast {method!r} (known: {', '.join(METHODS)})")
    return METHODS[method]


def _source_index(method: str, step_s: int, first_unknown: IntArray, target: IntArray) -> IntArray:
    """Index of the known value each target step is forecast from."""
    period = _check(method)
    if period < 0:
        return target
    if period == 0:
        return first_unknown - 1
    p = max(1, period // step_s)
    lag = ((target - first_unknown) // p + 1) * p
    return target - lag


def forecast(actual: IntensitySeries, at: datetime, horizon_s: int, method: str = "persistence") -> IntensitySeries:
    """The ``method`` forecast issued at ``at`` for ``[at, at + horizon_s)``."""
    _check(method)
    step = actual.step_s
    at_s = epoch_s(at)
    # Only steps that ended by ``at`` are known; the step in progress is not.
    first = math.floor((at_s - actual.start_s) / step)
    last = math.ceil((at_s + max(horizon_s, 1) - actual.start_s) / step)
    target = np.arange(first, last, dtype=np.int64)
    src = _source_index(method, step, np.full(target.shape, first), target)
    if src.size == 0 or src.min() < 0 or src.max() >= len(actual):
        raise CarbonDataError(
            f"{actual.zone}: not enough data for a {method} forecast at {at.isoformat()} "
            f"(data {actual.start.isoformat()} .. {actual.end.isoformat()})"
        )
    return IntensitySeries(
        zone=actual.zone,
        start=datetime.fromtimestamp(actual.start_s + first * step, UTC),
        step_s=step,
        values=actual.values[src],
        signal=actual.signal,
        source=f"{actual.source}+{method}",
        forecast=method != "oracle",
    )


def mape(actual: IntensitySeries, method: str, horizon_s: int = 86_400) -> float:
    """Mean absolute percentage error (%) over every issue time and horizon step.

    Issue times are the step boundaries; for each, the forecast of steps ``0..H-1`` ahead is
    compared with the actual value (steps with actual value 0 are skipped).
    """
    _check(method)
    values = actual.values
    h = max(1, horizon_s // actual.step_s)
    max_lag = h if method == "persistence" else max(h, METHODS[method] // actual.step_s + h)
    issue = np.arange(max(1, max_lag), len(values) - h + 1, dtype=np.int64)
    if issue.size == 0:
        raise CarbonDataError(f"{actual.zone}: series too short to evaluate {method}")
    errors: list[FloatArray] = []
    for j in range(h):
        target = issue + j
        src = _source_index(method, actual.step_s, issue, target)
        a, f = values[target], values[src]
        ok = a != 0
        errors.append(np.abs(f[ok] - a[ok]) / np.abs(a[ok]))
    return float(np.mean(np.concatenate(errors)) * 100.0)


Forecaster = Callable[[IntensitySeries, datetime, int], IntensitySeries]


def forecaster(method: str) -> Forecaster:
    """A forecast function for ``method`` (validated now, not at first use)."""
    _check(method)
    return lambda actual, at, horizon_s: forecast(actual, at, horizon_s, method)
