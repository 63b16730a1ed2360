"""What placement takes and gives: a job's request, a region's load, and the decision
(:class:`Placement`, with the :class:`Candidate` detail stored for ``explain``).

These are scheduling's own types (the carbon package knows nothing of them): the online
placer, the CAS client and service and the scheduling service share them; ``explain`` and
the web views read what ``Placement.candidates_json`` stored in the Decision row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol


class Explanation(Protocol):
    """What a decision saw, turned into text and per-candidate detail only on demand."""

    def reason(self) -> str: ...

    def candidates(self) -> dict[str, Candidate]: ...


@dataclass(frozen=True)
class RegionLoad:
    """Jobs a region currently holds (from the database)."""

    queued: int = 0
    running: int = 0

    @property
    def backlog(self) -> int:
        return self.queued + self.running


#: A region with no jobs (what a region missing from the loads holds).
IDLE = RegionLoad()


@dataclass(frozen=True)
class PlacementRequest:
    """What one job needs: when it may start, how long it runs, how long it may wait."""

    earliest: datetime
    runtime_s: float
    max_delay_s: float = 0.0
    deadline: datetime | None = None
    job: int = 0  # a stable job number (submission id): round-robin and random use it
    cores: float = 1.0
    watts_per_core: float | None = None  # default: the placer's
    regions: Sequence[str] | None = None  # candidate region names (default: all enabled)


@dataclass(frozen=True)
class Candidate:
    """One region as the policy saw it (stored in the Decision for ``explain``)."""

    region: str
    zone: str
    intensity: float | None  # mean forecast g/kWh over the run starting at the earliest start
    expected_g: float | None
    best_start: str | None = None  # ISO time of this region's cheapest allowed start
    best_intensity: float | None = None
    forecast_error: float | None = None  # measured relative error at best_start (regret guard)
    queue_wait_s: float = 0.0
    backlog: int = 0
    feasible: bool = True
    why_not: str | None = None


@dataclass(frozen=True)
class Placement:
    """The answer: where and when, what it is expected to emit, and why."""

    policy: str
    region: str
    start: datetime
    expected_g: float
    intensity: float
    runtime_s: float
    energy_kwh: float
    fallback: str | None = None
    reason_text: str | None = None
    candidate_detail: dict[str, Candidate] | None = None
    explain_data: Explanation | None = field(default=None, repr=False, compare=False)

    @cached_property
    def reason(self) -> str:
        if self.reason_text is not None:
            return self.reason_text
        return self.explain_data.reason() if self.explain_data is not None else self.policy

    @cached_property
    def candidates(self) -> dict[str, Candidate]:
        if self.candidate_detail is not None:
            return self.candidate_detail
        return self.explain_data.candidates() if self.explain_data is not None else {}

    def saved_vs(self, region: str) -> float | None:
        """Expected gCO2 saved versus running now in ``region`` (None if it had no data)."""
        c = self.candidates.get(region)
        return None if c is None or c.expected_g is None else c.expected_g - self.expected_g

    def candidates_json(self) -> dict[str, Any]:
        return {name: asdict(c) for name, c in self.candidates.items()}
