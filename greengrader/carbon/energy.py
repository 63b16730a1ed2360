"""The energy model, and the energy and emissions of one grading job from figures the
executor measures.

energy (kWh) = (CPU core-seconds x W per core + memory GB x W per GB x wall seconds) x PUE
/ 3.6e6 (:func:`run_kwh` is that product for one power draw: the placer's and the
simulator's estimates and accounting's charges all go through it). W per core is the CPU model's TDP (codecarbon's maintained ``cpu_power.csv``,
read through ``importlib.resources``) divided by its core count; an unknown model falls
back to ``FALLBACK_TDP_W`` per socket. Memory draws ``memory_w_per_gb`` (codecarbon's
3 W per 8 GB by default).

Emissions integrate intensity over the actual run window: energy is spread evenly over
``[start, start + wall_s)`` and multiplied by the time-weighted mean of the step function.
Everything here takes plain numbers so Docker stats, cgroup files or Kubernetes metrics can
feed it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any, overload

from greengrader.carbon.base import CarbonProvider, FloatArray
from greengrader.settings import Settings

J_PER_KWH = 3.6e6
FALLBACK_TDP_W = 85.0  # codecarbon's assumption for an unrecognised CPU
_NOISE = re.compile(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$|\d+-core|\bwith\b.*$", re.I)


@dataclass(frozen=True)
class PowerModel:
    """Power figures of one worker."""

    watts_per_core: float
    memory_w_per_gb: float
    cpu_model: str
    basis: str


def _norm(name: str) -> str:
    return " ".join(_NOISE.sub(" ", name.lower()).split())


@lru_cache(maxsize=1)
def cpu_power_table() -> dict[str, float]:
    """Normalised CPU model name -> TDP (W), from codecarbon's table ({} if unavailable)."""
    try:
        text = resources.files("codecarbon").joinpath("data", "hardware", "cpu_power.csv").read_text(encoding="utf-8-sig")
    except (ModuleNotFoundError, OSError):
        return {}
    table: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO(text)):
        try:
            table.setdefault(_norm(row["Name"]), float(row["TDP"]))
        except (KeyError, ValueError):
            continue
    return table


def lookup_tdp(cpu_model: str) -> tuple[str, float] | None:
    """Best table entry for ``cpu_model``: exact, else the entry whose model number appears."""
    table = cpu_power_table()
    key = _norm(cpu_model)
    if key in table:
        return key, table[key]
    tokens = set(key.split())
    best: tuple[int, str] | None = None
    for name in table:
        parts = name.split()
        # The model number (last token, e.g. "6248", "i7-10510u", "7763") must match exactly.
        if len(parts) < 2 or parts[-1] not in tokens or not any(c.isdigit() for c in parts[-1]):
            continue
        score = len(tokens & set(parts))
        if best is None or score > best[0]:
            best = (score, name)
    return (best[1], table[best[1]]) if best else None


def detect_cpu() -> tuple[str, int]:
    """This machine's CPU model name and logical core count."""
    import cpuinfo

    info = cpuinfo.get_cpu_info()
    return str(info.get("brand_raw") or "unknown"), int(info.get("count") or os.cpu_count() or 1)


def power_model(
    cpu_model: str, cores: int, *, tdp_w: float | None = None, memory_w_per_gb: float = 0.375
) -> PowerModel:
    """Per-core power from ``tdp_w`` if given, else the table, else the fallback TDP."""
    cores = max(1, cores)
    if tdp_w is not None:
        return PowerModel(tdp_w / cores, memory_w_per_gb, cpu_model, f"configured TDP {tdp_w:g} W / {cores} cores")
    match = lookup_tdp(cpu_model)
    if match is not None:
        name, tdp = match
        return PowerModel(tdp / cores, memory_w_per_gb, cpu_model, f"codecarbon TDP {tdp:g} W ({name}) / {cores} cores")
    return PowerModel(
        FALLBACK_TDP_W / cores, memory_w_per_gb, cpu_model,
        f"unknown CPU: fallback TDP {FALLBACK_TDP_W:g} W / {cores} cores",
    )


def worker_power_model(settings: Settings) -> PowerModel:
    """The power model of the machine this runs on (``GREENGRADER_CPU_MODEL``/``_CPU_TDP_W`` override)."""
    model, cores = detect_cpu()
    return power_model(settings.cpu_model or model, cores, tdp_w=settings.cpu_tdp_w,
                       memory_w_per_gb=settings.memory_w_per_gb)


@overload
def run_kwh(seconds: float, watts: float, pue: float) -> float: ...
@overload
def run_kwh(seconds: FloatArray, watts: float | FloatArray, pue: float) -> FloatArray: ...
def run_kwh(seconds: Any, watts: Any, pue: float) -> Any:
    """Energy (kWh, facility side) of drawing ``watts`` for ``seconds`` behind ``pue``;
    element-wise on arrays (the simulator prices a whole trace at once)."""
    return seconds * watts * pue / J_PER_KWH


def energy_kwh(cpu_seconds: float, memory_gb: float, wall_seconds: float, power: PowerModel, pue: float) -> float:
    """Energy of a job that used ``cpu_seconds`` of CPU (summed over cores) and held
    ``memory_gb`` (e.g. the peak or mean working set) for ``wall_seconds``."""
    if min(cpu_seconds, memory_gb, wall_seconds) < 0 or pue < 1:
        raise ValueError("cpu_seconds, memory_gb and wall_seconds must be >= 0, pue >= 1")
    cpu = run_kwh(cpu_seconds, power.watts_per_core, pue)
    return cpu + run_kwh(wall_seconds, memory_gb * power.memory_w_per_gb, pue)


def emissions_g(provider: CarbonProvider, zone: str, start: datetime, wall_seconds: float, kwh: float) -> float:
    """Realised gCO2eq: ``kwh`` spread over the actual run window's intensity."""
    if wall_seconds <= 0:
        return kwh * provider.series(zone, start, start + timedelta(seconds=1)).at(start)
    end = start + timedelta(seconds=wall_seconds)
    return provider.series(zone, start, end).integrate_g(start, wall_seconds, kwh)

