"""Electricity Maps API v3: average (lifecycle by default) carbon intensity.

``carbon-intensity/latest``, ``/past-range`` (any window) and
``/forecast``; the token goes in the ``auth-token`` header.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.http import HttpClient, require
from greengrader.carbon.resample import from_points
from greengrader.carbon.watttime import iso
from greengrader.errors import ProviderAuthError, ProviderError
from greengrader.settings import Settings
from greengrader.times import as_utc


class ElectricityMapsProvider:
    """Electricity Maps (``GREENGRADER_ELECTRICITYMAPS_TOKEN``)."""

    name = "electricitymaps"

    def __init__(self, client: HttpClient, token: str | None, emission_factor: str = "lifecycle") -> None:
        self.client = client
        self.token = token
        self.emission_factor = emission_factor

    @classmethod
    def from_settings(cls, settings: Settings) -> ElectricityMapsProvider:
        client = HttpClient("electricitymaps", settings.electricitymaps_url, timeout_s=settings.carbon_http_timeout_s,
                            retries=settings.carbon_http_retries, cache_ttl_s=settings.carbon_cache_ttl_s)
        token = settings.electricitymaps_token.get_secret_value() if settings.electricitymaps_token else None
        return cls(client, token, settings.carbon_emission_factor)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        if not self.token:
            raise ProviderAuthError("electricitymaps: GREENGRADER_ELECTRICITYMAPS_TOKEN is not set")
        return self.client.get_json(path, params={**params, "emissionFactorType": self.emission_factor},
                                    headers={"auth-token": self.token})

    def _series(self, zone: str, points: Any, *, forecast: bool) -> IntensitySeries:
        if not isinstance(points, list):
            raise ProviderError(f"electricitymaps: expected a list of points for {zone}")
        try:
            pts = [p for p in points if p.get("carbonIntensity") is not None]
            return from_points(zone, [str(p["datetime"]) for p in pts], [float(p["carbonIntensity"]) for p in pts],
                               signal="average", source=f"electricitymaps:{self.emission_factor}",
                               step_s=3600, forecast=forecast)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProviderError(f"electricitymaps: malformed data points: {exc}") from None

    def latest(self, zone: str) -> float:
        doc = self._get("/v3/carbon-intensity/latest", {"zone": zone})
        return float(require(doc, "carbonIntensity", provider=self.name))

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        doc = self._get("/v3/carbon-intensity/past-range", {"zone": zone, "start": iso(start), "end": iso(end)})
        return self._series(zone, require(doc, "data", provider=self.name), forecast=False)

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        doc = self._get("/v3/carbon-intensity/forecast", {"zone": zone})
        series = self._series(zone, require(doc, "forecast", provider=self.name), forecast=True)
        end = as_utc(at) + timedelta(seconds=max(horizon_s, 1))
        if not series.covers(max(series.start, as_utc(at)), end):
            raise ProviderError(f"electricitymaps: forecast for {zone} ends at {series.end.isoformat()}, before {end.isoformat()}")
        return series
