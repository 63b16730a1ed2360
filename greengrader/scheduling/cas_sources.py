"""Which carbon data a CAS request decides on: ``carbon_data_source`` names a provider
(the configured one, or another this deployment can build; anything else is answered with
a warning and the configured one) and ``use_prediction`` picks its forecast (true) or its
actual values (false, where the provider has them: data sets)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from greengrader.carbon import PROVIDERS
from greengrader.carbon.base import CarbonProvider, IntensitySeries
from greengrader.errors import CarbonDataError, ConfigError
from greengrader.scheduling.placement import Placer


class _Actuals:
    """A provider whose "forecast" is the actual series (``use_prediction: false``); where
    the provider has no actual values ahead (live APIs), its forecast."""

    def __init__(self, provider: CarbonProvider) -> None:
        self.provider = provider
        self.name = f"{provider.name} (actuals)"

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self.provider.series(zone, start, end)

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        try:
            actual = self.provider.series(zone, at, at + timedelta(seconds=max(horizon_s, 1)))
        except CarbonDataError:
            return self.provider.forecast(zone, at, horizon_s)
        return IntensitySeries(actual.zone, actual.start, actual.step_s, actual.values, actual.signal,
                               actual.source, forecast=False)

    def now(self, zone: str | None = None) -> datetime:
        replay = getattr(self.provider, "now", None)
        if not callable(replay):
            raise CarbonDataError(f"{self.provider.name} has no replay clock")
        out: datetime = replay(zone)
        return out


class PlacerPool:
    """The placer for a request's ``carbon_data_source`` and ``use_prediction``: the
    configured provider by default, another provider by name when ``build`` can make it."""

    def __init__(self, placer: Placer, build: Callable[[str], CarbonProvider] | None = None) -> None:
        self.default = placer
        self.build = build
        self._placers: dict[tuple[str, bool], Placer] = {}

    def _placer(self, provider: CarbonProvider) -> Placer:
        d = self.default
        return Placer(d.policy, provider, d.regions, watts_per_core=d.watts_per_core, pue=d.pue,
                      capacity_aware=d.capacity_aware, queue_aware=d.queue_aware,
                      queue_wait_penalty=d.queue_wait_penalty, forecast_cache_s=d.forecast_cache_s,
                      forecast_margin=d.forecast_margin)

    def get(self, carbon_data_source: str, use_prediction: bool, warnings: list[str]) -> Placer:
        """The placer for a request (notes what it could not honour in ``warnings``)."""
        source = self._source(carbon_data_source, warnings)
        key = (source, use_prediction)
        if key not in self._placers:
            base = self.default.provider if source == self.default.provider.name else self._provider(source)
            self._placers[key] = self._placer(base if use_prediction else _Actuals(base))
        placer = self._placers[key]
        if not use_prediction and not callable(getattr(placer.provider, "now", None)):
            warnings.append(f"use_prediction is false but {source} has no actual values ahead of now; "
                            "decided on its forecast")
        return placer

    def _source(self, name: str, warnings: list[str]) -> str:
        configured = self.default.provider.name
        if name == configured:
            return name
        if self.build is not None and name in PROVIDERS:
            try:
                self._provider(name)
                return name
            except (ConfigError, CarbonDataError) as exc:
                warnings.append(f"carbon_data_source {name!r} is not available here ({exc}); used {configured!r}")
                return configured
        warnings.append(f"carbon_data_source {name!r} is not a provider configured here; used {configured!r}")
        return configured

    def _provider(self, name: str) -> CarbonProvider:
        assert self.build is not None
        return self.build(name)
