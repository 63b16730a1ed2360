"""Client of a carbon-aware scheduler with c3lab's CAS API shape, used for carbon queries.

Only ``best`` is available: the CAS answers "which candidate, and when" for a job of a
given runtime (``POST /carbon-aware-scheduler/``), not intensity series, so ``series`` and
``forecast`` raise :class:`ProviderError` and a fallback chain (``cas,dataset``) serves them.
Zones are sent as candidate location ids. The scheduling package runs its own CAS service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from greengrader.carbon.base import BestSlot, IntensitySeries, as_utc
from greengrader.carbon.formats import parse_time
from greengrader.carbon.http import HttpClient, require
from greengrader.errors import ConfigError, ProviderError
from greengrader.settings import Settings

PATH = "/carbon-aware-scheduler/"


class CasCarbonProvider:
    """Carbon queries against ``GREENGRADER_CAS_URL``."""

    name = "cas"

    def __init__(self, client: HttpClient, *, carbon_data_source: str = "c3lab", watts_per_core: float = 5.0,
                 core_count: int = 1) -> None:
        self.client = client
        self.carbon_data_source = carbon_data_source
        self.watts_per_core = watts_per_core
        self.core_count = core_count

    @classmethod
    def from_settings(cls, settings: Settings) -> CasCarbonProvider:
        if not settings.cas_url:
            raise ConfigError("GREENGRADER_CAS_URL: not set (needed by the 'cas' carbon source)")
        return cls(HttpClient("cas", settings.cas_url, timeout_s=settings.cas_timeout_s,
                              retries=settings.carbon_http_retries, cache_ttl_s=0))

    def request_body(self, zones: Sequence[str], window_start: datetime, window_end: datetime,
                     duration_s: int) -> dict[str, Any]:
        start = as_utc(window_start)
        max_delay = max(0, int((as_utc(window_end) - start).total_seconds()) - duration_s)
        return {
            "runtime": max(1, duration_s),
            "schedule": {"type": "onetime", "start_time": start.isoformat(), "max_delay": max_delay},
            "dataset": {"input_size_gb": 0, "output_size_gb": 0},
            "candidate_locations": [{"id": z} for z in zones],
            "carbon_data_source": self.carbon_data_source,
            "watts_per_core": self.watts_per_core,
            "core_count": self.core_count,
        }

    def best(self, zones: Sequence[str], window_start: datetime, window_end: datetime,
             duration_s: int) -> BestSlot:
        body = self.request_body(zones, window_start, window_end, duration_s)
        doc = self.client.request_json("POST", PATH, json_body=body, cache=False)
        regions = require(doc, "optimal-regions", provider=self.name)
        try:
            first = regions[0]["candidates"][0]
        except (IndexError, KeyError, TypeError):
            raise ProviderError(f"cas: no optimal candidate in {str(regions)[:160]}") from None
        zone = str(first["id"] if isinstance(first, dict) else first)
        start = as_utc(window_start)
        start_text = (first.get("start_time") if isinstance(first, dict) else None) or doc.get("optimal-start-time")
        if start_text:
            start = datetime.fromtimestamp(parse_time(str(start_text)), UTC)
        scores = doc.get("raw-scores", {}).get(zone, {}) if isinstance(doc.get("raw-scores"), dict) else {}
        try:
            g, kwh = float(scores["carbon-emission-from-compute"]), float(scores["energy-usage"])
            mean = g / kwh if kwh > 0 else float("nan")
        except (KeyError, TypeError, ValueError):
            mean = float(regions[0].get("rating", "nan")) if isinstance(regions[0], dict) else float("nan")
        return BestSlot(zone, start, mean)

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        raise ProviderError("cas: the carbon-aware scheduler API serves placements, not intensity series")

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        raise ProviderError("cas: the carbon-aware scheduler API serves placements, not forecasts")
