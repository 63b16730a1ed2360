"""Trace sources: CSV round trip, the arrival model's shape, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from greengrader.errors import TraceError
from greengrader.simulation.traces import ArrivalModel, Trace, from_csv, to_csv


def test_csv_round_trip_and_defaults(tmp_path: Path) -> None:
    trace = ArrivalModel(count=50, seed=1).generate()
    path = tmp_path / "t.csv"
    to_csv(trace, path)
    back = from_csv(path)
    assert np.allclose(back.arrival_s, trace.arrival_s, atol=1e-5)
    assert np.allclose(back.runtime_s, trace.runtime_s, atol=1e-3)
    assert np.array_equal(back.deadline_s, trace.deadline_s)
    path.write_text("timestamp,assignment,runtime\n2023-01-02 10:00,HW2,\n2023-01-01T09:00:00+01:00,HW1,30\n")
    t = from_csv(path, default_runtime_s=45.0)
    assert t.runtime_s.tolist() == [30.0, 45.0]  # sorted by arrival; empty runtime = default
    assert [t.assignments[i] for i in t.assignment] == ["HW1", "HW2"]
    assert t.arrival_s[0] == datetime(2023, 1, 1, 8, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text", ["when,x\n1,2\n", "timestamp,runtime\nyesterday,3\n", "timestamp,runtime\n2023-01-01,-1\n"])
def test_bad_csv_is_a_trace_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError):
        from_csv(path)


def test_model_is_seeded_peaks_in_the_evening_and_surges_before_the_deadline() -> None:
    a, b = ArrivalModel(count=2000, seed=7).generate(), ArrivalModel(count=2000, seed=7).generate()
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert not np.array_equal(a.arrival_s, ArrivalModel(count=2000, seed=8).generate().arrival_s)
    tz = ZoneInfo("America/Los_Angeles")
    hours = np.bincount([datetime.fromtimestamp(t, UTC).astimezone(tz).hour for t in a.arrival_s], minlength=24)
    assert set(np.argsort(hours)[-3:]) <= {18, 19, 20, 21}
    days = ((a.arrival_s - a.arrival_s.min()) // 86400).astype(int)
    per_day = np.bincount(days)
    assert per_day[-1] > 2 * per_day[0]  # the deadline surge
    assert np.all(a.arrival_s <= a.deadline_s)
    assert abs(a.runtime_s.mean() - 23.35) < 0.5


def test_term_has_weekly_assignments() -> None:
    t = ArrivalModel.term(count=700, seed=0).generate()
    assert len(t.assignments) == 10 and len(set(t.assignment.tolist())) == 10


def test_columns_are_validated() -> None:
    with pytest.raises(TraceError):
        Trace(np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.zeros(2, np.int64), np.full(2, np.nan))
    with pytest.raises(TraceError):
        Trace.build([1.0], [0.0])
