"""``ridge``: a small learned forecast per zone and horizon, fitted on history only.

For a target ``h`` steps after the issue step ``u`` the features are the nowcast
``x[u]``, the latest known value at the same time of day, the seven-day same-hour mean
and the nowcast's offset from its own same-hour mean; the weights are a ridge regression
(closed form, :func:`numpy.linalg.solve`) per zone and horizon, refitted every
:data:`REFIT_DAYS` days on the forecasts of the previous :data:`TRAIN_DAYS` days whose
targets were known at the refit (so nothing after the issue step is read). Before the
first fit it falls back to ``blend``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
REFIT_DAYS = 7
TRAIN_DAYS = 28
RIDGE = 1e-2  # relative to the mean square of the features
#: Days of history the features need before the first training issue.
BLEND_HISTORY = 8


def features(values: FloatArray, issue: IntArray, target: IntArray, day: int) -> FloatArray:
    """``[R, U, H, F]`` features of the targets ``target[U, H]`` issued at ``issue[U]``."""
    from greengrader.carbon.forecast import _seasonal, same_hour_mean

    now = values[:, issue][:, :, None]
    same = _seasonal(values, issue, target, day)
    mean = same_hour_mean(values, target, issue, day)
    level = now - same_hour_mean(values, issue[:, None], issue - 1, day)
    ones = np.ones_like(mean)
    return np.stack([ones, np.broadcast_to(now, mean.shape), same, mean, np.broadcast_to(level, mean.shape)], axis=-1)


def _fit(x: FloatArray, y: FloatArray) -> FloatArray:
    """Ridge weights ``[F]`` for ``x[N, F]``, ``y[N]`` (no penalty on the intercept)."""
    penalty = RIDGE * np.eye(x.shape[1]) * max(float(np.mean(x[:, 1:] ** 2)), 1e-9)
    penalty[0, 0] = 0.0
    out: FloatArray = np.asarray(np.linalg.solve(x.T @ x + penalty, x.T @ y), dtype=np.float64)
    return out


def ridge_predict(values: FloatArray, issue: IntArray, target: IntArray, day: int) -> FloatArray:
    """``[R, U, H]`` forecasts (see the module docstring); column 0 is set by the caller."""
    from greengrader.carbon.forecast import _blend

    out = _blend(values, issue, target, day)
    n = values.shape[1]
    horizon = target.shape[1]
    x_all = features(values, issue, target, day)
    refit = REFIT_DAYS * day
    train = TRAIN_DAYS * day
    epochs = issue // refit  # issues between two refits share one model
    for epoch in np.unique(epochs):
        at = int(epoch) * refit  # the refit step: only targets known by then train it
        lo = at - train - horizon
        if lo < BLEND_HISTORY * day:
            continue
        hist = np.arange(lo, at, dtype=np.int64)
        h_target = hist[:, None] + np.arange(horizon)[None, :]
        known = h_target <= at
        hx = features(values, hist, np.minimum(h_target, n - 1), day)
        hy = values[:, np.minimum(h_target, n - 1)]
        sel = np.nonzero(epochs == epoch)[0]
        for r in range(values.shape[0]):
            for h in range(1, horizon):
                ok = known[:, h]
                if ok.sum() < 8 * x_all.shape[-1]:
                    continue
                w = _fit(hx[r, ok, h], hy[r, ok, h])
                out[r, sel, h] = x_all[r, sel, h] @ w
    return out
