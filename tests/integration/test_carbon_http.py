"""HTTP carbon providers against a real local HTTP server speaking each API's shape."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from greengrader.carbon.carbon_aware_sdk import CarbonAwareSdkProvider
from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.electricitymaps import ElectricityMapsProvider
from greengrader.carbon.fallback import FallbackProvider
from greengrader.carbon.http import HttpClient
from greengrader.carbon.store import CarbonStore
from greengrader.carbon.watttime import LBS_PER_MWH_TO_G_PER_KWH, WattTimeProvider
from greengrader.errors import (
    CarbonDataError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
)

T = datetime(2022, 6, 1, tzinfo=UTC)


def client(server: HTTPServer, name: str, **kw: Any) -> HttpClient:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("retries", 3)
    kw.setdefault("cache_ttl_s", 0)
    return HttpClient(name, server.url_for(""), **kw)


def hourly_points(n: int, key_t: str, key_v: str, start: datetime = T, base: float = 100) -> list[dict[str, Any]]:
    return [{key_t: (start + timedelta(hours=i)).isoformat().replace("+00:00", "Z"), key_v: base + i} for i in range(n)]


# --- WattTime v3 ---------------------------------------------------------------------------

def watttime(httpserver: HTTPServer) -> WattTimeProvider:
    httpserver.expect_request("/login", headers={"Authorization": "Basic dXNlcjpwYXNz"}).respond_with_json({"token": "tok1"})
    return WattTimeProvider(client(httpserver, "watttime"), "user", "pass")


def test_watttime_historical_forecast_region_and_index(httpserver: HTTPServer) -> None:
    provider = watttime(httpserver)
    points = [{"point_time": (T + timedelta(minutes=5 * i)).isoformat(), "value": 1000.0 + i} for i in range(24)]
    meta = {"units": "lbs_co2_per_mwh", "data_point_period_seconds": 300, "signal_type": "co2_moer"}
    auth = {"Authorization": "Bearer tok1"}
    httpserver.expect_request("/v3/historical", headers=auth).respond_with_json({"data": points, "meta": meta})
    httpserver.expect_request("/v3/forecast", headers=auth).respond_with_json({"data": points, "meta": meta})
    httpserver.expect_request("/v3/region-from-loc").respond_with_json(
        {"region": "CAISO_NORTH", "region_full_name": "California ISO Northern", "signal_type": "co2_moer"})

    s = provider.series("CAISO_NORTH", T, T + timedelta(hours=2))
    assert s.signal == "marginal" and s.step_s == 300 and len(s) == 24
    assert s.values[3] == pytest.approx(1003.0 * LBS_PER_MWH_TO_G_PER_KWH)
    fc = provider.forecast("CAISO_NORTH", T, 3600)
    assert fc.forecast and fc.at(T) == pytest.approx(1000 * LBS_PER_MWH_TO_G_PER_KWH)
    assert provider.region_from_loc(37.8, -122.3) == "CAISO_NORTH"
    hist = next(r for r, _ in httpserver.log if r.path == "/v3/historical")
    assert hist.args["region"] == "CAISO_NORTH" and hist.args["start"] == "2022-06-01T00:00:00Z"
    logins = [r for r, _ in httpserver.log if r.path == "/login"]
    assert len(logins) == 1  # the token is reused


def test_watttime_relogs_in_once_on_401(httpserver: HTTPServer) -> None:
    provider = watttime(httpserver)
    httpserver.expect_oneshot_request("/v3/region-from-loc").respond_with_data("expired", status=401)
    httpserver.expect_request("/v3/region-from-loc").respond_with_json({"region": "PJM_DC"})
    assert provider.region_from_loc(38.9, -77.0) == "PJM_DC"
    assert len([r for r, _ in httpserver.log if r.path == "/login"]) == 2


def test_watttime_bad_credentials(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/login").respond_with_data("nope", status=401)
    provider = WattTimeProvider(client(httpserver, "watttime"), "user", "wrong")
    with pytest.raises(ProviderAuthError, match="credentials rejected"):
        provider.region_from_loc(0, 0)
    with pytest.raises(ProviderAuthError, match="not set"):
        WattTimeProvider(client(httpserver, "watttime"), None, None).series("X", T, T + timedelta(hours=1))


# --- Electricity Maps ------------------------------------------------------------------------

def emaps(httpserver: HTTPServer, **kw: Any) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(client(httpserver, "electricitymaps", **kw), "secret-token")


def test_electricitymaps_latest_range_forecast(httpserver: HTTPServer) -> None:
    hdr = {"auth-token": "secret-token"}
    httpserver.expect_request("/v3/carbon-intensity/latest", headers=hdr).respond_with_json(
        {"zone": "DE", "carbonIntensity": 302, "datetime": "2022-06-01T00:00:00.000Z", "emissionFactorType": "lifecycle"})
    httpserver.expect_request("/v3/carbon-intensity/past-range", headers=hdr).respond_with_json(
        {"zone": "DE", "data": hourly_points(6, "datetime", "carbonIntensity")})
    httpserver.expect_request("/v3/carbon-intensity/forecast", headers=hdr).respond_with_json(
        {"zone": "DE", "forecast": hourly_points(24, "datetime", "carbonIntensity", base=50)})
    p = emaps(httpserver)
    assert p.latest("DE") == 302
    s = p.series("DE", T, T + timedelta(hours=6))
    assert s.values.tolist() == [100, 101, 102, 103, 104, 105] and s.source == "electricitymaps:lifecycle"


def test_429_with_retry_after_is_honoured(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/v3/carbon-intensity/latest").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"})
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json({"carbonIntensity": 77})
    start = time.monotonic()
    assert emaps(httpserver).latest("DE") == 77
    assert time.monotonic() - start >= 0.95


def test_persistent_429_becomes_rate_limited(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_data(
        "", status=429, headers={"Retry-After": "0"})
    with pytest.raises(ProviderRateLimited, match="429"):
        emaps(httpserver, retries=2).latest("DE")
    assert len(httpserver.log) == 2


def test_timeout_is_retried_then_a_clear_error(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_handler(slow)
    with pytest.raises(ProviderError, match="timed out"):
        emaps(httpserver, timeout_s=0.2, retries=2).latest("DE")
    # The server is single-threaded: let it finish the abandoned requests before the next test.
    deadline = time.monotonic() + 5
    while len(httpserver.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(httpserver.log) == 2


def test_malformed_json_and_missing_fields(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_data("<html>oops", content_type="text/html")
    httpserver.expect_request("/v3/carbon-intensity/past-range").respond_with_json({"zone": "DE", "rows": []})
    p = emaps(httpserver)
    with pytest.raises(ProviderError, match="malformed JSON"):
        p.latest("DE")
    assert len(httpserver.log) == 1  # not retried
    with pytest.raises(ProviderError, match="no 'data'"):
        p.series("DE", T, T + timedelta(hours=1))


def test_server_error_retried_then_succeeds(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/v3/carbon-intensity/latest").respond_with_data("boom", status=503)
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json({"carbonIntensity": 12})
    assert emaps(httpserver).latest("DE") == 12


def test_ttl_cache_avoids_repeat_requests(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json({"carbonIntensity": 5})
    p = emaps(httpserver, cache_ttl_s=60)
    assert p.latest("DE") == p.latest("DE") == 5
    assert len(httpserver.log) == 1


def test_failure_falls_back_to_the_next_provider(httpserver: HTTPServer, carbon_dir: Path, tmp_path: Path) -> None:
    httpserver.expect_request("/v3/carbon-intensity/past-range").respond_with_data("bad token", status=401)
    store = CarbonStore(tmp_path)
    store.register(carbon_dir / "electricitymaps_greendcc" / "DE-LU_2022_hourly.csv")
    chain = FallbackProvider([emaps(httpserver), DatasetProvider(store)])
    s = chain.series("DE", T, T + timedelta(hours=3))
    assert s.source == "electricitymaps:lifecycle" and len(s) == 3  # from the CSV export
    assert "credentials rejected (401)" in chain.last_errors[0]
    with pytest.raises(CarbonDataError, match="all carbon providers failed"):
        chain.series("NOWHERE", T, T + timedelta(hours=1))


# --- Carbon Aware SDK web API ------------------------------------------------------------------

def test_carbon_aware_sdk_emissions_and_forecast(httpserver: HTTPServer) -> None:
    rows = [{"location": "eastus", "time": (T + timedelta(hours=i)).isoformat(), "rating": 400.0 - i,
             "duration": "01:00:00"} for i in range(4)]
    httpserver.expect_request("/emissions/bylocations").respond_with_json(rows)
    forecast_doc = [{
        "generatedAt": T.isoformat(), "location": "eastus", "dataStartAt": T.isoformat(),
        "dataEndAt": (T + timedelta(hours=4)).isoformat(), "windowSize": 60,
        "optimalDataPoints": [{"location": "eastus", "timestamp": (T + timedelta(hours=2)).isoformat(),
                               "duration": 60, "value": 310.5}],
        "forecastData": [{"location": "eastus", "timestamp": (T + timedelta(minutes=5 * i)).isoformat(),
                          "duration": 5, "value": 320.0 + i} for i in range(48)],
    }, {
        "location": "westus", "optimalDataPoints": [{"location": "westus", "timestamp": T.isoformat(),
                                                     "duration": 60, "value": 290.0}], "forecastData": [],
    }]
    httpserver.expect_request("/emissions/forecasts/current").respond_with_json(forecast_doc)
    p = CarbonAwareSdkProvider(client(httpserver, "carbon-aware-sdk"))
    s = p.series("eastus", T, T + timedelta(hours=4))
    assert s.values.tolist() == [400, 399, 398, 397] and s.step_s == 3600
    fc = p.forecast("eastus", T, 3600)
    assert fc.forecast and fc.values[1] == 321.0


def test_carbon_aware_sdk_non_list_is_an_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/emissions/bylocations").respond_with_json({"title": "Bad Request"})
    with pytest.raises(ProviderError, match="expected a JSON list"):
        CarbonAwareSdkProvider(client(httpserver, "carbon-aware-sdk")).series("x", T, T + timedelta(hours=1))
