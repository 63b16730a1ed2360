"""What a simulation is asked (:class:`SimulationConfig`) and what it gives: one
:class:`Run` per (policy, forecast, capacity variant), gathered in a
:class:`SimulationResult`. The engine fills them, the metrics read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from greengrader.carbon.forecast import METHODS
from greengrader.errors import ConfigError
from greengrader.simulation.grid import CarbonGrid
from greengrader.simulation.traces import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_POLICIES: tuple[str, ...] = (
    "static", "random", "round-robin", "worst", "carbon-optimal", "spatio-temporal",
)
#: Policies whose decisions depend on the intensity forecast (the others ignore intensity
#: or, like ``worst``, serve as a baseline evaluated on actual values).
FORECAST_DRIVEN: tuple[str, ...] = ("carbon-optimal", "spatio-temporal")
BASELINES: tuple[str, ...] = ("static", "random", "worst")


@dataclass(frozen=True)
class SimulationConfig:
    policies: tuple[str, ...] = DEFAULT_POLICIES
    slack_s: float = 0.0
    forecasts: tuple[str, ...] = ("oracle", "persistence", "seasonal-day", "blend")
    #: Jobs each region can start per grid step (one value for all or one per region).
    capacity: tuple[float, ...] | None = None
    watts: float = 5.0
    pue: float = 1.0
    static_region: str | int = 0
    seed: int = 0
    respect_deadlines: bool = True
    #: Regret guard: a forecast-driven delay must save more than this times the forecast's
    #: measured relative error at that horizon (0 turns the guard off).
    forecast_margin: float = 0.25
    #: Jobs decided together in a capacity-limited round (a speed knob, not a semantic one).
    block: int = 4096

    def __post_init__(self) -> None:
        if self.slack_s < 0:
            raise ConfigError("slack must be >= 0")
        if self.forecast_margin < 0:
            raise ConfigError("the forecast margin must be >= 0")
        for f in self.forecasts:
            if f not in METHODS:
                raise ConfigError(f"unknown forecast {f!r} (known: {', '.join(METHODS)})")
        if "oracle" not in self.forecasts:
            raise ConfigError("the oracle forecast is always needed (it is the reference)")
        if not self.policies:
            raise ConfigError("no policies to simulate")


@dataclass
class Run:
    """One policy's outcome over the trace."""

    policy: str
    forecast: str
    capacity_limited: bool
    region: IntArray
    start_s: FloatArray
    intensity: FloatArray
    emissions_g: FloatArray
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = self.policy if self.forecast == "oracle" else f"{self.policy} [{self.forecast}]"
        return f"{name} (capacity)" if self.capacity_limited else name

    @property
    def total_g(self) -> float:
        return float(self.emissions_g.sum())


@dataclass
class SimulationResult:
    config: SimulationConfig
    trace: Trace
    grid: CarbonGrid
    runs: list[Run]
    seconds: float = 0.0

    def run(self, policy: str, forecast: str = "oracle", capacity_limited: bool = False) -> Run:
        for r in self.runs:
            if (r.policy, r.forecast, r.capacity_limited) == (policy, forecast, capacity_limited):
                return r
        raise KeyError((policy, forecast, capacity_limited))
