"""The energy and carbon a finished run is charged with (stored on its Result).

Best effort: a run without a start time, or whose zone's intensity is unknown, gets no
figures rather than wrong ones. The conversions are ``greengrader.carbon.energy``'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from greengrader.carbon import get_provider
from greengrader.carbon.energy import emissions_g, energy_kwh, worker_power_model
from greengrader.context import Context
from greengrader.errors import GreengraderError
from greengrader.grading.executors import ExecutionResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Footprint:
    """Energy (kWh), emissions (g) and mean intensity (g/kWh) over the run; None where unknown."""

    energy_kwh: float | None = None
    carbon_g: float | None = None
    intensity: float | None = None


def footprint(ctx: Context, region: str, ex: ExecutionResult) -> Footprint:
    if ex.started_at is None:
        return Footprint()
    try:
        # Detecting the CPU and loading carbon data take ~1 s: once per context.
        power = ctx.memo("grading.power", lambda: worker_power_model(ctx.settings))
        kwh = energy_kwh(
            ex.cpu_s if ex.cpu_s is not None else ex.runtime_s,
            (ex.memory_peak_bytes or 0) / 2**30,
            ex.runtime_s,
            power,
            ctx.settings.pue,
        )
        provider = ctx.memo("grading.provider", lambda: get_provider(ctx.settings.carbon_source, ctx.settings))
        grams = emissions_g(provider, ctx.regions.get(region).zone, ex.started_at, ex.runtime_s, kwh)
    except (ImportError, GreengraderError, ValueError) as exc:
        log.warning("no carbon figures for this run: %s", exc)
        return Footprint()
    return Footprint(kwh, grams, grams / kwh if kwh > 0 else None)
