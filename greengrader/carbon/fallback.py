"""A chain of providers: each call goes to the first provider that answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from greengrader.carbon.base import CarbonProvider, IntensitySeries
from greengrader.errors import CarbonDataError

log = logging.getLogger(__name__)
T = TypeVar("T")


class FallbackProvider:
    """Try providers in order; a :class:`CarbonDataError` moves on to the next one."""

    def __init__(self, providers: Sequence[CarbonProvider]) -> None:
        if not providers:
            raise CarbonDataError("FallbackProvider needs at least one provider")
        self.providers = list(providers)
        self.name = ",".join(p.name for p in self.providers)
        self.last_errors: list[str] = []

    def _first(self, call: Callable[[CarbonProvider], T]) -> T:
        errors: list[str] = []
        for provider in self.providers:
            try:
                result = call(provider)
            except CarbonDataError as exc:
                log.warning("carbon provider %s failed, trying the next: %s", provider.name, exc)
                errors.append(f"{provider.name}: {exc}")
                continue
            self.last_errors = errors
            return result
        self.last_errors = errors
        raise CarbonDataError("all carbon providers failed: " + "; ".join(errors))

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._first(lambda p: p.series(zone, start, end))

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        return self._first(lambda p: p.forecast(zone, at, horizon_s))
