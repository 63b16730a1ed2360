"""Green Software Foundation Carbon Aware SDK, web API flavour.

``GET /emissions/bylocations`` (history) and ``/emissions/forecasts/current`` (forecast).
Ratings are gCO2eq/kWh.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.http import HttpClient
from greengrader.carbon.resample import from_points
from greengrader.carbon.watttime import iso
from greengrader.errors import ConfigError, ProviderError
from greengrader.settings import Settings
from greengrader.times import as_utc


def _duration_s(text: Any) -> int | None:
    """``"01:00:00"`` (emissions) or a number of minutes (forecast data points)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return int(text * 60) or None
    parts = str(text or "").split(":")
    try:
        h, m, s = (float(p) for p in (*parts, "0", "0")[:3])
    except ValueError:
        return None
    return int(h * 3600 + m * 60 + s) or None


class CarbonAwareSdkProvider:
    """The SDK's web API at ``GREENGRADER_CARBON_AWARE_SDK_URL``."""

    name = "carbon-aware-sdk"

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> CarbonAwareSdkProvider:
        if not settings.carbon_aware_sdk_url:
            raise ConfigError("GREENGRADER_CARBON_AWARE_SDK_URL: not set (the SDK web API's base URL)")
        return cls(HttpClient("carbon-aware-sdk", settings.carbon_aware_sdk_url,
                              timeout_s=settings.carbon_http_timeout_s, retries=settings.carbon_http_retries,
                              cache_ttl_s=settings.carbon_cache_ttl_s))

    def _list(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        doc = self.client.get_json(path, params=params)
        if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
            raise ProviderError(f"carbon-aware-sdk: expected a JSON list from {path}, got {str(doc)[:120]}")
        return doc

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        rows = self._list("/emissions/bylocations", {"location": [zone], "time": iso(start), "toTime": iso(end)})
        try:
            return from_points(zone, [str(r["time"]) for r in rows], [float(r["rating"]) for r in rows],
                               signal="average", source="carbon-aware-sdk",
                               step_s=_duration_s(rows[0].get("duration")) if rows else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(f"carbon-aware-sdk: malformed emissions data: {exc}") from None

    def _forecasts(self, zones: Sequence[str], start: datetime, end: datetime) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"location": list(zones), "dataStartAt": iso(start), "dataEndAt": iso(end)}
        return self._list("/emissions/forecasts/current", params)

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        end = as_utc(at) + timedelta(seconds=max(horizon_s, 1))
        docs = self._forecasts([zone], at, end)
        try:
            points = docs[0]["forecastData"]
            return from_points(zone, [str(p["timestamp"]) for p in points], [float(p["value"]) for p in points],
                               signal="average", source="carbon-aware-sdk",
                               step_s=_duration_s(points[0].get("duration")) if points else None, forecast=True)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(f"carbon-aware-sdk: malformed forecast: {exc}") from None
