"""Submission traces for the simulator: from the database, from a CSV file, or generated.

A :class:`Trace` is a set of columns sorted by arrival time: arrival (epoch seconds, UTC),
runtime (s), assignment (index into ``assignments``) and deadline (epoch seconds, NaN when
the assignment has none).

The arrival model reproduces the shape of the original evaluation (134 submissions to one
assignment in one week, busiest between 18 and 21 h local time, most of them in the last
days before the deadline): an hourly weight profile times a deadline surge, sampled with a
seeded generator.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from greengrader.errors import ConfigError, TraceError
from greengrader.times import parse_instant

if TYPE_CHECKING:
    from greengrader.db import Database

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Thesis figures (autograder container runtime, mean and standard deviation).
THESIS_RUNTIME_S = 23.352
THESIS_RUNTIME_SD_S = 2.321

# Relative submission rate per local hour of day: quiet at night, rising through the
# afternoon, peaking 18-21 h (the original course's pattern), tailing off to midnight.
HOURLY_SHAPE: tuple[float, ...] = (
    0.9, 0.6, 0.35, 0.2, 0.12, 0.1, 0.12, 0.2, 0.35, 0.5, 0.65, 0.75,
    0.8, 0.85, 0.9, 1.0, 1.1, 1.3, 2.2, 2.6, 2.6, 2.2, 1.6, 1.2,
)


@dataclass(frozen=True, eq=False)
class Trace:
    """Submissions to replay, sorted by arrival."""

    arrival_s: FloatArray
    runtime_s: FloatArray
    assignment: IntArray
    deadline_s: FloatArray
    assignments: tuple[str, ...] = ("default",)
    source: str = ""

    def __post_init__(self) -> None:
        n = self.arrival_s.size
        arrays = (self.runtime_s, self.assignment, self.deadline_s)
        if any(a.shape != (n,) for a in (self.arrival_s, *arrays)):
            raise TraceError("trace columns must be 1-D and of equal length")
        if n and np.any(np.diff(self.arrival_s) < 0):
            raise TraceError("trace arrivals must be sorted (use Trace.build)")
        if n and (not np.all(self.runtime_s > 0) or not np.all(np.isfinite(self.arrival_s))):
            raise TraceError("trace runtimes must be positive and arrivals finite")

    @classmethod
    def build(
        cls,
        arrival_s: npt.ArrayLike,
        runtime_s: npt.ArrayLike,
        assignment: npt.ArrayLike | None = None,
        deadline_s: npt.ArrayLike | None = None,
        *,
        assignments: Sequence[str] = ("default",),
        source: str = "",
    ) -> Trace:
        """A trace from unsorted columns (sorted by arrival here, stably)."""
        arr = np.asarray(arrival_s, dtype=np.float64).reshape(-1)
        n = arr.size
        run = np.broadcast_to(np.asarray(runtime_s, dtype=np.float64), (n,))
        asg = np.zeros(n, np.int64) if assignment is None else np.asarray(assignment, np.int64)
        dl = np.full(n, np.nan) if deadline_s is None else np.asarray(deadline_s, np.float64)
        order = np.argsort(arr, kind="stable")
        return cls(arr[order], run[order].copy(), asg.reshape(-1)[order], dl.reshape(-1)[order],
                   tuple(assignments), source)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(float(self.arrival_s[0]), UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(float(self.arrival_s[-1]), UTC)

    def shifted(self, seconds: float) -> Trace:
        """The same trace moved in time (e.g. onto the year the carbon data cover)."""
        return Trace(self.arrival_s + seconds, self.runtime_s, self.assignment,
                     self.deadline_s + seconds, self.assignments, self.source)


# -- CSV ---------------------------------------------------------------------------------

def _parse_time(text: str, where: str) -> float:
    try:
        return parse_instant(text).timestamp()
    except ValueError:
        raise TraceError(f"{where}: unreadable timestamp {text!r}") from None


def from_csv(path: Path, *, default_runtime_s: float = 60.0) -> Trace:
    """A trace from a CSV with columns ``timestamp``, ``assignment``, ``runtime`` (seconds)
    and optionally ``deadline``; naive timestamps are UTC, an empty runtime uses the default."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror}") from None
    if not rows:
        raise TraceError(f"{path}: no rows")
    missing = {"timestamp"} - set(rows[0])
    if missing:
        raise TraceError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    names: dict[str, int] = {}
    arrival, runtime, asg, deadline = [], [], [], []
    for i, row in enumerate(rows, start=2):
        where = f"{path}:{i}"
        arrival.append(_parse_time(row["timestamp"], where))
        text = (row.get("runtime") or "").strip()
        try:
            runtime.append(float(text) if text else default_runtime_s)
        except ValueError:
            raise TraceError(f"{where}: runtime {text!r} is not a number") from None
        asg.append(names.setdefault((row.get("assignment") or "default").strip(), len(names)))
        due = (row.get("deadline") or "").strip()
        deadline.append(_parse_time(due, where) if due else math.nan)
    if min(runtime) <= 0:
        raise TraceError(f"{path}: runtimes must be positive")
    return Trace.build(arrival, runtime, asg, deadline, assignments=list(names), source=f"csv:{path}")


def to_csv(trace: Trace, path: Path) -> None:
    """Write ``trace`` in the format :func:`from_csv` reads."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "assignment", "runtime", "deadline"])
        for a, r, k, d in zip(trace.arrival_s, trace.runtime_s, trace.assignment, trace.deadline_s,
                              strict=True):
            due = "" if math.isnan(d) else datetime.fromtimestamp(float(d), UTC).isoformat()
            w.writerow([datetime.fromtimestamp(float(a), UTC).isoformat(), trace.assignments[k],
                        f"{r:.3f}", due])


# -- database ----------------------------------------------------------------------------

def _due_date(metadata: object) -> float:
    if isinstance(metadata, dict):
        assignment = metadata.get("assignment")
        if isinstance(assignment, dict) and assignment.get("due_date"):
            try:
                return _parse_time(str(assignment["due_date"]), "submission metadata")
            except TraceError:
                return math.nan
    return math.nan


def from_database(
    db: Database, *, start: datetime | None = None, end: datetime | None = None,
    default_runtime_s: float = 60.0,
) -> Trace:
    """Submissions stored by the bridge: arrival = ``received_at``, runtime = the graded
    container runtime (``default_runtime_s`` when not graded yet), deadline = the assignment's
    Gradescope due date."""
    from sqlalchemy import select

    from greengrader.models import Assignment, Result, Submission

    stmt = (
        select(Submission.received_at, Submission.metadata_json, Assignment.title,
               Assignment.gradescope_id, Result.runtime_s)
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .outerjoin(Result, Result.submission_id == Submission.id)
        .order_by(Submission.received_at)
    )
    if start is not None:
        stmt = stmt.where(Submission.received_at >= start)
    if end is not None:
        stmt = stmt.where(Submission.received_at < end)
    with db.session() as session:
        rows = session.execute(stmt).all()
    if not rows:
        raise TraceError("no submissions in the database for the chosen period")
    names: dict[str, int] = {}
    asg = [names.setdefault(title or f"assignment {gid}", len(names)) for _, _, title, gid, _ in rows]
    return Trace.build(
        [r[0].timestamp() for r in rows],
        [r[4] if r[4] and r[4] > 0 else default_runtime_s for r in rows],
        asg,
        [_due_date(r[1]) for r in rows],
        assignments=list(names),
        source="database",
    )


# -- arrival model -----------------------------------------------------------------------

@dataclass(frozen=True)
class ArrivalModel:
    """Synthetic submissions over a week or a term, shaped like the original course.

    Deadlines fall every ``deadline_every_days`` at ``deadline_hour`` local time, the last
    one at the end of the period; each submission belongs to the next deadline's assignment.
    ``surge`` scales how strongly submissions bunch up in the ``surge_hours`` before a
    deadline (0: no surge).
    """

    count: int = 134
    start: datetime = field(default_factory=lambda: datetime(2023, 5, 29, 7, tzinfo=UTC))
    days: int = 7
    tz: str = "America/Los_Angeles"
    deadline_every_days: int = 7
    deadline_hour: int = 23
    surge: float = 4.0
    surge_hours: float = 48.0
    runtime_s: float = THESIS_RUNTIME_S
    runtime_sd_s: float = THESIS_RUNTIME_SD_S
    seed: int = 0
    hourly: tuple[float, ...] = HOURLY_SHAPE

    @classmethod
    def week(cls, **kw: object) -> ArrivalModel:
        return cls(**kw)  # type: ignore[arg-type]

    @classmethod
    def term(cls, **kw: object) -> ArrivalModel:
        """Ten weeks, an assignment due every week."""
        base: dict[str, object] = {"days": 70, "count": 1340, "deadline_every_days": 7}
        return cls(**{**base, **kw})  # type: ignore[arg-type]

    def _zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {self.tz!r}") from None

    def deadlines(self) -> list[datetime]:
        """Assignment deadlines in the period (local wall-clock time, as UTC datetimes)."""
        zone = self._zone()
        first_local = self.start.astimezone(zone)
        out = []
        k = 1
        while k * self.deadline_every_days <= self.days:
            day = (first_local + timedelta(days=k * self.deadline_every_days - 1)).date()
            local = datetime(day.year, day.month, day.day, self.deadline_hour, 59, tzinfo=zone)
            out.append(local.astimezone(UTC))
            k += 1
        end = self.start + timedelta(days=self.days)
        if not out or out[-1] < end - timedelta(days=1):
            out.append(end)
        return out

    def hour_weights(self) -> tuple[FloatArray, list[datetime]]:
        """Relative rate for every hour of the period and the deadlines used."""
        if self.count < 1 or self.days < 1:
            raise ConfigError("the arrival model needs count >= 1 and days >= 1")
        if len(self.hourly) != 24:
            raise ConfigError("the hourly shape needs 24 values")
        t0 = self.start.timestamp()
        hours = t0 + 3600.0 * np.arange(self.days * 24)
        zone = self._zone()
        local_hour = np.array(
            [datetime.fromtimestamp(h, UTC).astimezone(zone).hour for h in hours], dtype=np.int64
        )
        w = np.asarray(self.hourly, dtype=np.float64)[local_hour]
        deadlines = self.deadlines()
        due = np.array([d.timestamp() for d in deadlines])
        nxt = due[np.minimum(np.searchsorted(due, hours), due.size - 1)]
        to_due = np.clip(nxt - hours, 0, None) / 3600.0
        w = w * (1.0 + self.surge * np.exp(-to_due / max(self.surge_hours / 2.0, 1e-9)))
        return w / w.sum(), deadlines

    def generate(self) -> Trace:
        """Draw ``count`` submissions (reproducible for a given seed)."""
        rng = np.random.default_rng(self.seed)
        weights, deadlines = self.hour_weights()
        hour = rng.choice(weights.size, size=self.count, p=weights)
        arrival = self.start.timestamp() + 3600.0 * (hour + rng.random(self.count))
        runtime = np.clip(rng.normal(self.runtime_s, self.runtime_sd_s, self.count),
                          max(1.0, self.runtime_s * 0.1), None)
        due = np.array([d.timestamp() for d in deadlines])
        k = np.minimum(np.searchsorted(due, arrival), due.size - 1)
        names = [f"A{i + 1}" for i in range(due.size)]
        return Trace.build(arrival, runtime, k, due[k], assignments=names,
                           source=f"model:{self.days}d,{self.count},seed={self.seed}")
