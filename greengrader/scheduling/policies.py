"""Placement policies as vectorised numpy kernels, shared by the online scheduler and the
simulator.

Every policy turns a **cost cube** ``costs[jobs, regions, starts]`` (lower is better; any
unit, usually expected gCO2 or mean intensity over the run) into one choice per job:
``(region_idx[jobs], start_idx[jobs])``. Start index 0 is the earliest allowed start
(submission time or now); spatial policies only ever pick start 0.

Two entry points with identical semantics:

- :meth:`Policy.choose` takes the full cube (the online scheduler calls it with jobs=1),
- :meth:`Policy.choose_grid` takes one cost per (region, grid step) shared by all jobs
  plus each job's first step and number of allowed starts; spatio-temporal uses a sliding
  window minimum here, so a year of hourly data for 20 regions and a million jobs takes
  well under a second (the simulator's path).

Each policy is a *preference order*: :meth:`Policy.score` maps costs to scores and the
kernel takes the lowest-scoring feasible (region, start). Infeasible cells (no free
worker slot, no untainted node, past the deadline) are skipped, so every policy falls
back to its next preference — capacity awareness is the same code for all of them.
Ties go to the lowest region index, then the earliest start.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from greengrader.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NO_CHOICE = -1
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _as_jobs(jobs: npt.ArrayLike | None, n: int) -> IntArray:
    if jobs is None:
        return np.arange(n, dtype=np.int64)
    out = np.asarray(jobs, dtype=np.int64).reshape(-1)
    if out.size != n:
        raise ValueError(f"jobs has {out.size} entries for {n} jobs")
    return out


def argmin_feasible(scores: FloatArray, feasible: BoolArray | None = None) -> tuple[IntArray, IntArray]:
    """Lowest score per job over (region, start), skipping infeasible cells.

    ``scores`` is ``[J, R, S]``; ``feasible`` broadcasts to it. NaN and +inf count as
    infeasible. Jobs with no feasible cell get ``NO_CHOICE`` (-1) for both indices.
    """
    if scores.ndim != 3:
        raise ValueError(f"scores must be [jobs, regions, starts], got shape {scores.shape}")
    j, r, s = scores.shape
    masked = np.where(np.isnan(scores), np.inf, scores)
    if feasible is not None:
        masked = np.where(np.broadcast_to(feasible, scores.shape), masked, np.inf)
    flat = masked.reshape(j, r * s)
    best = np.argmin(flat, axis=1)
    ok = np.isfinite(flat[np.arange(j), best])
    region = np.where(ok, best // s, NO_CHOICE).astype(np.int64)
    start = np.where(ok, best % s, NO_CHOICE).astype(np.int64)
    return region, start


def splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """A stateless 64-bit mix: the same (seed, job, region) always gives the same number."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        out: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return out


def sliding_min(grid: FloatArray, width: int) -> tuple[FloatArray, IntArray]:
    """Minimum and its (earliest) offset over ``grid[..., t : t + width]`` for every ``t``.

    The grid is padded with +inf at the end, so windows near the end just see fewer steps.
    """
    if width < 1:
        raise ValueError("width must be >= 1")
    pad = np.full((*grid.shape[:-1], width - 1), np.inf)
    padded = np.concatenate([grid, pad], axis=-1)
    view = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    offset = np.argmin(view, axis=-1).astype(np.int64)
    value = np.take_along_axis(view, offset[..., None], axis=-1)[..., 0]
    return value, offset


class Policy(ABC):
    """One placement strategy. Subclasses define :meth:`score` (lower = preferred)."""

    name: str = ""
    #: True when the policy may pick a start after the earliest one.
    temporal: bool = False

    @abstractmethod
    def score(self, costs: FloatArray, jobs: IntArray, regions: Sequence[str] | None) -> FloatArray:
        """Scores ``[J, R, S']`` (``S' = 1`` for spatial policies) from costs ``[J, R, S]``."""

    def choose(
        self,
        costs: npt.ArrayLike,
        feasible: npt.ArrayLike | None = None,
        *,
        jobs: npt.ArrayLike | None = None,
        regions: Sequence[str] | None = None,
    ) -> tuple[IntArray, IntArray]:
        """Choose ``(region_idx[J], start_idx[J])`` from ``costs[J, R, S]``.

        ``feasible`` (bool, broadcastable to ``[J, R, S]``) marks usable cells; NaN/inf
        costs are never chosen by cost-driven policies. ``jobs`` are stable job numbers
        (e.g. submission ids) so round-robin and random give the same answer whatever
        the batch. ``regions`` names the region axis (needed by ``static``). Jobs with
        no feasible cell get -1.
        """
        cube = np.asarray(costs, dtype=np.float64)
        if cube.ndim != 3:
            raise ValueError(f"costs must be [jobs, regions, starts], got shape {cube.shape}")
        ids = _as_jobs(jobs, cube.shape[0])
        mask = np.broadcast_to(np.asarray(True if feasible is None else feasible, dtype=bool), cube.shape)
        mask = mask & np.isfinite(cube)
        if not self.temporal:
            cube, mask = cube[:, :, :1], mask[:, :, :1]
        return self._pick(cube, mask, ids, regions)

    def _pick(
        self, cube: FloatArray, mask: BoolArray, jobs: IntArray, regions: Sequence[str] | None
    ) -> tuple[IntArray, IntArray]:
        return argmin_feasible(self.score(cube, jobs, regions), mask)

    def choose_one(
        self, costs: Sequence[Sequence[float]], feasible: Sequence[bool], *, job: int = 0,
        regions: Sequence[str] | None = None,
    ) -> tuple[int, int]:
        """:meth:`choose` for a single job given as plain lists ``costs[R][S]`` and
        ``feasible[R]``; returns ``(region_idx, start_idx)``, -1s when nothing is feasible.
        Cost-driven policies override it with a pure-Python scan (the same answer)."""
        region, start = self.choose(
            np.array(costs, dtype=np.float64)[None], np.array(feasible, dtype=bool)[None, :, None],
            jobs=[job], regions=regions,
        )
        return int(region[0]), int(start[0])

    def choose_grid(
        self,
        grid: npt.ArrayLike,
        first: npt.ArrayLike,
        n_starts: int | npt.ArrayLike = 1,
        feasible: npt.ArrayLike | None = None,
        *,
        jobs: npt.ArrayLike | None = None,
        regions: Sequence[str] | None = None,
        penalty: npt.ArrayLike | None = None,
    ) -> tuple[IntArray, IntArray]:
        """Choose ``(region_idx[J], step_idx[J])`` on a shared time grid.

        ``grid[R, T]``: cost of starting in region r at grid step t (e.g. the mean intensity
        over the run starting there). ``first[J]``: each job's earliest step.
        ``n_starts``: allowed starts per job (1 = no delay; scalar or ``[J]``).
        ``feasible``: ``[R]`` or ``[R, T]`` availability. ``penalty``: ``[R]`` added to every
        cost of that region (queue awareness). Returned steps are absolute grid indices;
        equivalent to :meth:`choose` on the cube ``grid[:, first[j] : first[j] + n_starts]``.
        """
        g, first_idx, mask = self._grid_inputs(grid, first, feasible, penalty)
        return self._grid_choose(g, first_idx, mask, n_starts, _as_jobs(jobs, first_idx.size), regions)

    def _grid_choose(
        self, g: FloatArray, first_idx: IntArray, mask: BoolArray, n_starts: int | npt.ArrayLike,
        jobs: IntArray, regions: Sequence[str] | None,
    ) -> tuple[IntArray, IntArray]:
        """:meth:`choose_grid` on checked inputs; spatial policies start at ``first``."""
        region = self._grid_regions(g.T[:, :, None], mask.T[:, :, None], first_idx, jobs, regions)
        return region, np.where(region >= 0, first_idx, NO_CHOICE).astype(np.int64)

    def _grid_regions(
        self, steps: FloatArray, mask: BoolArray, first: IntArray, jobs: IntArray,
        regions: Sequence[str] | None,
    ) -> IntArray:
        # Spatial choices that do not depend on the job: decide once per grid step
        # (treating each step as a job), then gather: O(R*T + J) instead of O(R*J).
        per_step, _ = self._pick(steps, mask, np.zeros(steps.shape[0], dtype=np.int64), regions)
        out: IntArray = per_step[first]
        return out

    @staticmethod
    def _grid_inputs(
        grid: npt.ArrayLike, first: npt.ArrayLike, feasible: npt.ArrayLike | None,
        penalty: npt.ArrayLike | None,
    ) -> tuple[FloatArray, IntArray, BoolArray]:
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 2:
            raise ValueError(f"grid must be [regions, steps], got shape {g.shape}")
        if penalty is not None:
            g = g + np.asarray(penalty, dtype=np.float64).reshape(-1, 1)
        first_idx = np.asarray(first, dtype=np.int64).reshape(-1)
        if first_idx.size and (first_idx.min() < 0 or first_idx.max() >= g.shape[1]):
            raise ValueError("first step outside the grid")
        mask = np.isfinite(g)
        if feasible is not None:
            f = np.asarray(feasible, dtype=bool)
            mask = mask & (f.reshape(-1, 1) if f.ndim == 1 else f)
        return g, first_idx, mask

    def __repr__(self) -> str:
        return f"<policy {self.name}>"


class Static(Policy):
    """Always the home region (the original deployment's us-west); next in order if full."""

    name = "static"

    def __init__(self, region: str | int = 0) -> None:
        self.region = region

    def _home(self, regions: Sequence[str] | None, n: int) -> int:
        if isinstance(self.region, int):
            return self.region % n
        if regions is None:
            raise ValueError("static policy needs the region names to find its region")
        # The home may be left out of the candidates (it could not start this job): then
        # the order starts at the first candidate. A mistyped home is caught at start-up.
        names = list(regions)
        return names.index(self.region) if self.region in names else 0

    def score(self, costs: FloatArray, jobs: IntArray, regions: Sequence[str] | None) -> FloatArray:
        n = costs.shape[1]
        order = (np.arange(n) - self._home(regions, n)) % n
        return np.broadcast_to(order.astype(np.float64)[None, :, None], costs.shape)


class Random(Policy):
    """Uniform over the feasible regions, reproducible from (seed, job number)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def uniform(self, jobs: IntArray) -> FloatArray:
        """One number in [0, 1) per job, a pure function of (seed, job)."""
        key = (np.uint64(self.seed & 0xFFFFFFFF) << np.uint64(32)) ^ jobs.astype(np.uint64)
        out: FloatArray = (splitmix64(key) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        return out

    def score(self, costs: FloatArray, jobs: IntArray, regions: Sequence[str] | None) -> FloatArray:
        raise NotImplementedError("random picks by rank among feasible regions, not by score")

    def _pick(
        self, cube: FloatArray, mask: BoolArray, jobs: IntArray, regions: Sequence[str] | None
    ) -> tuple[IntArray, IntArray]:
        ok = mask[:, :, 0]
        # Feasible regions first (in region order): column k is the k-th feasible region.
        ranked = np.argsort(~ok, axis=1, kind="stable")
        count = ok.sum(axis=1)
        k = np.minimum((self.uniform(jobs) * count).astype(np.int64), np.maximum(count - 1, 0))
        region = np.where(count > 0, ranked[np.arange(ok.shape[0]), k], NO_CHOICE).astype(np.int64)
        return region, np.where(region >= 0, 0, NO_CHOICE).astype(np.int64)

    def _grid_regions(
        self, steps: FloatArray, mask: BoolArray, first: IntArray, jobs: IntArray,
        regions: Sequence[str] | None,
    ) -> IntArray:
        ok = mask[:, :, 0]
        ranked = np.argsort(~ok, axis=1, kind="stable")
        count = ok.sum(axis=1)[first]
        k = np.minimum((self.uniform(jobs) * count).astype(np.int64), np.maximum(count - 1, 0))
        out: IntArray = np.where(count > 0, ranked[first, k], NO_CHOICE).astype(np.int64)
        return out


class RoundRobin(Policy):
    """Job ``k`` goes to region ``k mod R`` (then the next one if that is full)."""

    name = "round-robin"

    def score(self, costs: FloatArray, jobs: IntArray, regions: Sequence[str] | None) -> FloatArray:
        n = costs.shape[1]
        order = (np.arange(n)[None, :] - jobs[:, None]) % n
        return np.broadcast_to(order.astype(np.float64)[:, :, None], costs.shape)

    def _grid_regions(
        self, steps: FloatArray, mask: BoolArray, first: IntArray, jobs: IntArray,
        regions: Sequence[str] | None,
    ) -> IntArray:
        n_steps, n = steps.shape[:2]
        table = np.empty((n, n_steps), dtype=np.int64)
        for k in range(n):  # one per-step decision table per residue of job mod R
            table[k], _ = self._pick(steps, mask, np.full(n_steps, k, dtype=np.int64), regions)
        out: IntArray = table[jobs % n, first]
        return out


def _scan_one(
    costs: Sequence[Sequence[float]], feasible: Sequence[bool], temporal: bool, sign: float
) -> tuple[int, int]:
    """Lowest ``sign * cost`` over feasible finite cells; ties to the lowest region, then
    the earliest start (what :func:`argmin_feasible` does on a cube of one job)."""
    best, choice = math.inf, (NO_CHOICE, NO_CHOICE)
    for r, (row, ok) in enumerate(zip(costs, feasible, strict=True)):
        if not ok:
            continue
        cells = row if temporal else row[:1]
        if sign > 0:
            # min() in C: it skips NaN except in first place and finds the first minimum.
            low = min(cells)
            if low == math.inf:
                continue
            if math.isfinite(low):
                if low < best:
                    best, choice = low, (r, cells.index(low))
                continue
        for s, cost in enumerate(cells):
            if math.isfinite(cost) and sign * cost < best:
                best, choice = sign * cost, (r, s)
    return choice


class _CostDriven(Policy):
    """A policy whose score is ``sign x cost``: a single job needs no numpy at all."""

    _sign = 1.0

    def score(self, costs: FloatArray, jobs: IntArray, regions: Sequence[str] | None) -> FloatArray:
        out: FloatArray = costs if self._sign > 0 else -costs
        return out

    def choose_one(
        self, costs: Sequence[Sequence[float]], feasible: Sequence[bool], *, job: int = 0,
        regions: Sequence[str] | None = None,
    ) -> tuple[int, int]:
        cls = type(self)
        if cls.score is not _CostDriven.score or cls._pick is not Policy._pick or cls.choose is not Policy.choose:
            # A subclass changed how scores are made: take the general path.
            return super().choose_one(costs, feasible, job=job, regions=regions)
        return _scan_one(costs, feasible, self.temporal, self._sign)


class Worst(_CostDriven):
    """The highest-cost region now (an evaluation baseline, never a sensible choice)."""

    name = "worst"
    _sign = -1.0


class CarbonOptimal(_CostDriven):
    """The lowest-cost region for an immediate start (spatial shifting only)."""

    name = "carbon-optimal"


class SpatioTemporal(CarbonOptimal):
    """The lowest-cost (region, start) over every allowed start (spatial + temporal)."""

    name = "spatio-temporal"
    temporal = True

    def _grid_choose(
        self, g: FloatArray, first_idx: IntArray, mask: BoolArray, n_starts: int | npt.ArrayLike,
        jobs: IntArray, regions: Sequence[str] | None,
    ) -> tuple[IntArray, IntArray]:
        g = np.where(mask, g, np.inf)
        widths = np.broadcast_to(np.asarray(n_starts, dtype=np.int64), first_idx.shape)
        region = np.full(first_idx.shape, NO_CHOICE, dtype=np.int64)
        step = np.full(first_idx.shape, NO_CHOICE, dtype=np.int64)
        # One sliding-window pass per distinct slack; traces usually have one or a few.
        for width in np.unique(widths):
            sel = np.nonzero(widths == width)[0]
            value, offset = sliding_min(g, int(max(width, 1)))
            best_r = np.argmin(value, axis=0)
            cols = np.arange(value.shape[1])
            ok = np.isfinite(value[best_r, cols])
            best_t = cols + offset[best_r, cols]
            f = first_idx[sel]
            region[sel] = np.where(ok[f], best_r[f], NO_CHOICE)
            step[sel] = np.where(ok[f], best_t[f], NO_CHOICE)
        return region, step


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (Static, Random, RoundRobin, Worst, CarbonOptimal, SpatioTemporal)
}


def get_policy(name: str, *, seed: int = 0, static_region: str | int = 0) -> Policy:
    """A policy by short name (see :data:`POLICIES`) or dotted path ``pkg.module:Class``."""
    if name == "static":
        return Static(static_region)
    if name == "random":
        return Random(seed)
    cls: object = POLICIES.get(name)
    if cls is None:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr:
            raise ConfigError(
                f"GREENGRADER_POLICY: unknown policy {name!r} (known: {', '.join(POLICIES)}, "
                "or 'pkg.module:Class')"
            )
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"GREENGRADER_POLICY: cannot load {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise ConfigError(f"GREENGRADER_POLICY: {name!r} is not a Policy subclass")
    return cls()
