"""WattTime API v3: marginal operating emissions rate (MOER).

Login (HTTP basic -> bearer token, renewed every 25 minutes or on a 401), region from
location, signal index, forecast and historical data. WattTime reports lbs CO2/MWh; we
return gCO2/kWh (x 0.4536) with signal ``marginal``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from greengrader.carbon.base import IntensitySeries
from greengrader.carbon.http import HttpClient, require
from greengrader.carbon.resample import from_points
from greengrader.errors import ProviderAuthError, ProviderError
from greengrader.settings import Settings
from greengrader.times import as_utc

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237
_UNITS = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH, "g_co2_per_kwh": 1.0, "kg_co2_per_kwh": 1000.0}
TOKEN_TTL_S = 25 * 60


def iso(t: datetime) -> str:
    return as_utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


class WattTimeProvider:
    """WattTime v3 (``GREENGRADER_WATTTIME_USERNAME`` / ``_PASSWORD``)."""

    name = "watttime"

    def __init__(self, client: HttpClient, username: str | None, password: str | None,
                 signal_type: str = "co2_moer") -> None:
        self.client = client
        self.username = username
        self.password = password
        self.signal_type = signal_type
        self._token: tuple[float, str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WattTimeProvider:
        client = HttpClient("watttime", settings.watttime_url, timeout_s=settings.carbon_http_timeout_s,
                            retries=settings.carbon_http_retries, cache_ttl_s=settings.carbon_cache_ttl_s)
        password = settings.watttime_password.get_secret_value() if settings.watttime_password else None
        return cls(client, settings.watttime_username, password)

    def _login(self) -> str:
        if not self.username or not self.password:
            raise ProviderAuthError("watttime: GREENGRADER_WATTTIME_USERNAME and _PASSWORD are not set")
        doc = self.client.get_json("/login", auth=(self.username, self.password), cache=False)
        token = require(doc, "token", provider=self.name)
        self._token = (time.monotonic(), str(token))
        return str(token)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        if self._token is None or time.monotonic() - self._token[0] > TOKEN_TTL_S:
            self._login()
        assert self._token is not None
        try:
            return self.client.get_json(path, params=params, headers={"Authorization": f"Bearer {self._token[1]}"})
        except ProviderAuthError:
            # Tokens expire after 30 minutes; log in again once.
            token = self._login()
            return self.client.get_json(path, params=params, headers={"Authorization": f"Bearer {token}"})

    def region_from_loc(self, lat: float, lon: float) -> str:
        doc = self._get("/v3/region-from-loc", {"latitude": lat, "longitude": lon, "signal_type": self.signal_type})
        return str(require(doc, "region", provider=self.name))

    def _series(self, zone: str, doc: Any, points: list[dict[str, Any]], *, forecast: bool) -> IntensitySeries:
        meta = doc.get("meta", {}) if isinstance(doc, dict) else {}
        units = str(meta.get("units", "lbs_co2_per_mwh"))
        if units not in _UNITS:
            raise ProviderError(f"watttime: unsupported units {units!r}")
        step = meta.get("data_point_period_seconds")
        try:
            return from_points(
                zone, [str(p["point_time"]) for p in points], [float(p["value"]) for p in points],
                signal="marginal", source="watttime", step_s=int(step) if step else None,
                forecast=forecast, scale=_UNITS[units],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(f"watttime: malformed data points: {exc}") from None

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        doc = self._get("/v3/historical", {"region": zone, "start": iso(start), "end": iso(end),
                                           "signal_type": self.signal_type})
        return self._series(zone, doc, require(doc, "data", provider=self.name), forecast=False)

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        hours = max(1, -(-horizon_s // 3600))
        doc = self._get("/v3/forecast", {"region": zone, "signal_type": self.signal_type, "horizon_hours": hours})
        data = require(doc, "data", provider=self.name)
        end = as_utc(at) + timedelta(seconds=max(horizon_s, 1))
        points = [p for p in data if isinstance(p, dict) and "point_time" in p]
        series = self._series(zone, doc, points, forecast=True)
        if series.end < end:
            raise ProviderError(f"watttime: forecast for {zone} ends at {series.end.isoformat()}, before {end.isoformat()}")
        return series
