"""Why a placement went where it did: the per-candidate detail and the reason text,
computed from what the decision saw only when someone reads them (a batch of decisions
should not pay for text nobody reads)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from greengrader.regions.registry import Region
from greengrader.scheduling.policies import BoolArray, FloatArray
from greengrader.scheduling.types import IDLE, Candidate, RegionLoad


@dataclass(frozen=True)
class Explain:
    """What a decision saw (an :class:`~greengrader.scheduling.types.Explanation`). Arrays
    or lists: the batch path hands numpy rows, the single-decision path plain lists."""

    policy: str
    regions: Sequence[Region]
    starts: FloatArray | Sequence[float]  # [S]
    intensity: FloatArray | Sequence[Sequence[float]]  # [R, S]
    costs: FloatArray | Sequence[Sequence[float]]  # [R, S]
    kwh: float
    waits: FloatArray | Sequence[float]  # [R]
    loads: Mapping[str, RegionLoad]
    why: Mapping[str, str | None]
    feasible: BoolArray | Sequence[bool]
    ri: int
    si: int
    shift: float = 0.0
    guard: Sequence[Sequence[float]] | None = None  # [R, S] regret-guard cost factors
    margin: float = 0.0

    def _error(self, r: int, s: int) -> float | None:
        if self.guard is None or self.margin <= 0:
            return None
        return (self.guard[r][s] - 1.0) / self.margin

    def candidates(self) -> dict[str, Candidate]:
        costs, intensity = _plain(self.costs), _plain(self.intensity)
        starts, waits = _plain(self.starts), _plain(self.waits)
        out: dict[str, Candidate] = {}
        iso: dict[int, str] = {}  # regions mostly share their best start: format it once
        for i, r in enumerate(self.regions):
            row = costs[i]
            low = min(row)
            if low == low and math.isfinite(low):  # no NaN in front, a finite minimum
                best: int | None = row.index(low)  # the first minimum
            else:
                finite = [k for k, c in enumerate(row) if math.isfinite(c)]
                best = min(finite, key=row.__getitem__) if finite else None
            if best is not None and best not in iso:
                iso[best] = _iso(starts[best])
            now_i = intensity[i][0]
            known = math.isfinite(now_i)
            out[r.name] = Candidate(
                region=r.name, zone=r.zone,
                intensity=now_i if known else None,
                expected_g=self.kwh * now_i if known else None,
                best_start=iso[best] if best is not None else None,
                best_intensity=intensity[i][best] if best is not None else None,
                forecast_error=self._error(i, best) if best is not None else None,
                queue_wait_s=waits[i], backlog=self.loads.get(r.name, IDLE).backlog,
                feasible=self.why[r.name] is None, why_not=self.why[r.name],
            )
        return out

    def reason(self) -> str:
        intensity, starts, waits = _plain(self.intensity), _plain(self.starts), _plain(self.waits)
        chosen, start = self.regions[self.ri].name, float(starts[self.si])
        delay_h = (start - float(starts[0])) / 3600.0
        when = "now" if delay_h < 1e-9 else f"at {_iso(start)} (+{delay_h:.1f} h)"
        parts = [f"{self.policy}: {chosen} {when}, {intensity[self.ri][self.si]:.0f} g/kWh expected"]
        now_col = [row[0] if ok else math.inf for row, ok in zip(intensity, _plain(self.feasible), strict=True)]
        finite = [k for k, v in enumerate(now_col) if math.isfinite(v)]
        if finite:
            bi = min(finite, key=now_col.__getitem__)
            parts.append(f"best immediate: {self.regions[bi].name} {now_col[bi]:.0f} g/kWh")
        parts += self._guard_reason(intensity)
        skipped = [f"{n} ({w})" for n, w in self.why.items() if w]
        if skipped:
            parts.append("skipped " + ", ".join(skipped))
        if waits[self.ri] > 0:
            parts.append(f"queue wait ~{waits[self.ri]:.0f} s")
        if self.shift:
            parts.append(f"carbon data replayed at {_iso(float(starts[0]) + self.shift)}")
        return "; ".join(parts)

    def _guard_reason(self, intensity: Sequence[Sequence[float]]) -> list[str]:
        """Why the job waited or ran now, against the forecast's measured error."""
        if self.guard is None or self.margin <= 0:
            return []
        chosen = intensity[self.ri][self.si]
        if self.si > 0:
            now = intensity[self.ri][0]
            err = self._error(self.ri, self.si) or 0.0
            saving = (now - chosen) / chosen * 100.0 if chosen > 0 else 0.0
            return [f"waited: forecast {chosen:.0f} g/kWh ± {100 * err:.0f} % saves {saving:.0f} % vs now, "
                    f"beyond the margin of {self.margin:g} x the error"]
        ok = _plain(self.feasible)
        later = [(v, r, k) for r, row in enumerate(intensity) if ok[r] for k, v in enumerate(row) if k > 0 and math.isfinite(v)]
        if not later or min(later)[0] >= chosen:
            return []
        v, r, k = min(later)
        err = self._error(r, k) or 0.0
        return [f"ran now: a later start looked {(chosen - v) / v * 100.0:.0f} % cheaper "
                f"({v:.0f} g/kWh ± {100 * err:.0f} %), within the margin of {self.margin:g} x the error"]


def _plain(x: Any) -> Any:
    """Nested Python lists from a numpy array (or the list itself)."""
    return x.tolist() if isinstance(x, np.ndarray) else x


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
