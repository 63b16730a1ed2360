"""Energy model and per-job emissions on known inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.energy import (
    FALLBACK_TDP_W,
    emissions_g,
    energy_kwh,
    lookup_tdp,
    power_model,
    run_kwh,
)
from greengrader.carbon.store import CarbonStore

T = datetime(2022, 1, 1, tzinfo=UTC)


class Flat:
    """A two-step provider: 100 g/kWh in the first hour, 300 after (a real CarbonProvider)."""

    name = "two-step"

    def _s(self, forecast: bool) -> IntensitySeries:
        return IntensitySeries("Z", T, 3600, np.array([100.0, 300.0, 300.0]), forecast=forecast)

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._s(False).window(start, end)

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        return self._s(True)


def test_cpu_power_table_matches_real_model_names() -> None:
    assert lookup_tdp("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz") == ("intel xeon gold 6248", 150.0)
    assert lookup_tdp("AMD EPYC 7763 64-Core Processor") == ("amd epyc 7763", 280.0)
    assert lookup_tdp("Some Unknown CPU 0") is None


def test_power_model_sources() -> None:
    assert power_model("AMD EPYC 7763 64-Core Processor", 64).watts_per_core == pytest.approx(280 / 64)
    assert power_model("mystery", 4).watts_per_core == pytest.approx(FALLBACK_TDP_W / 4)
    configured = power_model("mystery", 4, tdp_w=40)
    assert configured.watts_per_core == 10 and "configured" in configured.basis


def test_energy_on_known_inputs() -> None:
    pm = power_model("x", 1, tdp_w=10.0, memory_w_per_gb=0.5)
    # 36 CPU-seconds at 10 W = 360 J; 2 GB x 0.5 W x 360 s = 360 J; x PUE 1.5 = 1080 J
    assert energy_kwh(36, 2, 360, pm, pue=1.5) == pytest.approx(1080 / 3.6e6)
    with pytest.raises(ValueError):
        energy_kwh(-1, 0, 0, pm, 1.2)


def test_one_energy_model_for_floats_and_arrays() -> None:
    # 5 W for an hour behind a PUE of 1.2 = 6 Wh; element-wise over a trace.
    assert run_kwh(3600.0, 5.0, 1.2) == pytest.approx(0.006)
    assert run_kwh(np.array([3600.0, 1800.0]), 5.0, 1.2).tolist() == pytest.approx([0.006, 0.003])
    pm = power_model("x", 1, tdp_w=10.0, memory_w_per_gb=0.5)
    assert energy_kwh(36, 2, 360, pm, pue=1.5) == pytest.approx(run_kwh(36, 10.0, 1.5) + run_kwh(360, 1.0, 1.5))


def test_emissions_integrate_over_the_actual_window() -> None:
    # 30 min at 100 + 30 min at 300 -> mean 200 g/kWh
    g = emissions_g(Flat(), "Z", T + timedelta(minutes=30), 3600, kwh=0.01)
    assert g == pytest.approx(2.0)


def test_emissions_on_real_hourly_data(carbon_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = CarbonStore(tmp_path)
    store.register(carbon_dir / "electricitymaps_greendcc" / "GB_2023_hourly.csv")
    provider = DatasetProvider(store)
    start = datetime(2023, 3, 26, 0, 40, tzinfo=UTC)  # spans the UK clock change (01:00 UTC)
    full = provider.full("GB")
    mean = (20 * full.at(start) + 40 * full.at(start + timedelta(minutes=20))) / 60
    assert emissions_g(provider, "GB", start, 3600, kwh=1.0) == pytest.approx(mean)
