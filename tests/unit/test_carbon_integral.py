"""The exact run integral and start-time search against brute force on a fine grid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greengrader.carbon import integral

STEP = 3600.0


def brute_mean(values: np.ndarray, t: float, r: float, fine: float = 1.0) -> float:
    """Mean over [t, t + r) by summing one-second slices (the definition)."""
    xs = t + (np.arange(round(r / fine)) + 0.5) * fine
    return float(values[(xs // STEP).astype(int)].mean())


def candidates(w0: float, w1: float, r: float) -> np.ndarray:
    """The candidate starts of one window (sorted, unique)."""
    row = integral.candidate_matrix(0.0, STEP, np.array([w0]), np.array([w1]), np.array([r]))[0]
    return np.unique(row[np.isfinite(row)])


def best_start(values: np.ndarray, w0: float, w1: float, r: float) -> tuple[float, float]:
    """The earliest candidate with the lowest mean, and that mean."""
    starts = candidates(w0, w1, r)
    means = integral.mean_intensity(0.0, STEP, values, integral.cumulative(values, STEP), starts, r)
    i = int(np.argmin(means))
    return float(starts[i]), float(means[i])


values_st = st.lists(st.integers(0, 900), min_size=3, max_size=10).map(lambda v: np.array(v, dtype=float))


@settings(max_examples=60, deadline=None)
@given(values=values_st, t=st.integers(0, 3 * 3600), r=st.integers(1, 4 * 3600))
def test_mean_intensity_matches_the_definition(values: np.ndarray, t: int, r: int) -> None:
    values = np.concatenate([values, np.full(6, 123.0)])  # room for the longest run
    cum = integral.cumulative(values, STEP)
    got = integral.mean_intensity(0.0, STEP, values, cum, np.array([t], dtype=float), float(r))[0]
    assert got == pytest.approx(brute_mean(values, t, r), abs=1e-6)
    assert integral.mean_one(0.0, STEP, values.tolist(), cum.tolist(), float(t), float(r)) == pytest.approx(got)


@settings(max_examples=80, deadline=None)
@given(
    values=values_st,
    w0=st.integers(0, 2 * 3600),
    slack=st.integers(0, 5 * 3600),
    r=st.integers(60, 3 * 3600),  # longer than a step too
)
def test_best_start_is_the_brute_force_optimum(values: np.ndarray, w0: int, slack: int, r: int) -> None:
    values = np.concatenate([values, np.full(12, 77.0)])
    cum = integral.cumulative(values, STEP)
    w1 = w0 + slack  # window ends need not be on a boundary
    t, mean = best_start(values, float(w0), float(w1), float(r))
    assert w0 <= t <= w1
    assert mean == pytest.approx(integral.mean_one(0.0, STEP, values.tolist(), cum.tolist(), t, float(r)))
    # Every start on a fine grid (every 60 s, and the window end) costs at least as much.
    fine = np.append(np.arange(w0, w1 + 1, 60, dtype=float), float(w1))
    brute = integral.mean_intensity(0.0, STEP, values, cum, fine, float(r))
    assert mean <= brute.min() + 1e-9


def test_candidates_include_ends_on_a_boundary_and_the_window_end() -> None:
    starts = candidates(600.0, 4 * 3600.0 + 900, 5400.0)
    assert starts[0] == 600 and starts[-1] == 4 * 3600 + 900
    # Run start on a boundary, run end on a boundary (t + 1.5 h = k h).
    assert {3600.0, 7200.0, 1800.0, 5400.0, 9000.0, 12600.0} <= set(starts.tolist())


@pytest.mark.parametrize(
    ("values", "r", "w1", "start", "mean"),
    [
        ([50, 50, 10, 100, 100], 5400.0, 3 * 3600.0, 5400.0, 35 / 1.5),  # the run ends on 03:00
        ([100, 10, 10], 1800.0, 2700.0, 2700.0, 55.0),  # the window end itself
    ],
)
def test_reproduced_misses(values: list[float], r: float, w1: float, start: float, mean: float) -> None:
    v = np.array(values, dtype=float)
    t, m = best_start(v, 0.0, w1, r)
    assert (t, m) == (pytest.approx(start), pytest.approx(mean))


def test_candidate_matrix_rows_equal_candidate_starts() -> None:
    w0 = np.array([0.0, 600.0, 5000.0])
    w1 = np.array([0.0, 4 * 3600.0, 5000.0 + 7200.0])
    d = np.array([100.0, 5400.0, 30.0])
    m = integral.candidate_matrix(0.0, STEP, w0, w1, d)
    for j in range(3):
        row = m[j][np.isfinite(m[j])]
        assert row[0] == w0[j]
        assert sorted(set(row.tolist())) == candidates(w0[j], w1[j], d[j]).tolist()


@settings(max_examples=60, deadline=None)
@given(w0=st.integers(0, 5 * 3600), slack=st.integers(0, 6 * 3600), r=st.integers(0, 3 * 3600))
def test_plain_float_helpers_equal_the_numpy_ones(w0: int, slack: int, r: int) -> None:
    a = integral.interior_list(0.0, STEP, float(w0), float(w0 + slack), float(r))
    b = integral.interior_candidates(0.0, STEP, float(w0), float(w0 + slack), float(r)).tolist()
    assert a == b
    rows = [np.arange(20, dtype=float) * k + 5 for k in (1, 3)]
    cums = [integral.cumulative(v, STEP).tolist() for v in rows]
    col = integral.mean_column(0.0, STEP, [v.tolist() for v in rows], cums, float(w0), float(r))
    assert col == [integral.mean_one(0.0, STEP, v.tolist(), c, float(w0), float(r)) for v, c in zip(rows, cums, strict=True)]
