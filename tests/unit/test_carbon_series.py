"""IntensitySeries arithmetic and the shared best-slot search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from greengrader.carbon.base import IntensitySeries, constant_series
from greengrader.errors import CarbonDataError

T0 = datetime(2022, 1, 1, tzinfo=UTC)


def hourly(values: list[float], zone: str = "Z") -> IntensitySeries:
    return IntensitySeries(zone=zone, start=T0, step_s=3600, values=np.array(values, dtype=float))


def test_at_is_a_step_function() -> None:
    s = hourly([100, 200, 300])
    assert s.at(T0) == 100
    assert s.at(T0 + timedelta(minutes=59)) == 100
    assert s.at(T0 + timedelta(hours=1)) == 200
    assert s.end == T0 + timedelta(hours=3)
    with pytest.raises(CarbonDataError):
        s.at(T0 + timedelta(hours=3))


def test_times_are_utc_datetime64() -> None:
    times = hourly([1, 2]).times()
    assert times[1] == np.datetime64("2022-01-01T01:00:00")


def test_mean_over_is_time_weighted() -> None:
    s = hourly([100, 200, 300])
    # 30 min at 100 then 60 min at 200 -> (50 + 200) / 1.5
    assert s.mean_over(T0 + timedelta(minutes=30), 5400) == pytest.approx(250 / 1.5)
    assert s.mean_over(T0, 10800) == pytest.approx(200)
    assert s.integrate_g(T0, 3600, kwh=0.5) == pytest.approx(50)


def test_mean_over_outside_data_raises() -> None:
    with pytest.raises(CarbonDataError, match="outside"):
        hourly([1, 2]).mean_over(T0 + timedelta(hours=1), 7200)


def test_window_aligns_to_grid_and_converts_timezones() -> None:
    s = hourly([1, 2, 3, 4])
    est = timezone(timedelta(hours=-5))
    w = s.window(datetime(2021, 12, 31, 20, 30, tzinfo=est), T0 + timedelta(hours=3))
    assert w.start == T0 + timedelta(hours=1)
    assert w.values.tolist() == [2, 3]


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(CarbonDataError, match="naive"):
        hourly([1]).at(datetime(2022, 1, 1))


def test_constant_series_covers_the_window() -> None:
    s = constant_series("X", 42.0, T0 + timedelta(minutes=10), T0 + timedelta(hours=2, minutes=5), source="t")
    assert s.start == T0 and s.end >= T0 + timedelta(hours=2, minutes=5)
    assert set(s.values.tolist()) == {42.0}
