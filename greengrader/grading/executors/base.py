"""The executor interface: run one grading job in isolation and report what happened.

An executor takes a :class:`Job` (image, submission files, metadata, limits) and returns an
:class:`ExecutionResult` whose ``outcome`` is one of :data:`OUTCOMES` and whose ``message``
is written for a TA. Executors never raise for anything the student or the autograder
did; they raise :class:`~greengrader.errors.ExecutorError` only when the infrastructure
(daemon, cluster) fails, so the task can retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from greengrader.settings import Settings

Outcome = Literal["graded", "failed", "timeout", "oom", "setup_error", "error"]
OUTCOMES: tuple[Outcome, ...] = ("graded", "failed", "timeout", "oom", "setup_error", "error")

# Per-assignment overrides accepted in ``Assignment.limits`` (anything else is ignored).
LIMIT_KEYS = ("timeout_s", "memory_mb", "cpus", "pids", "disk_mb", "strict", "fsize_mb", "nofile")
MAX_TIMEOUT_S = 2400  # Gradescope's maximum (40 min)


@dataclass(frozen=True)
class Limits:
    """Hard limits for one job; defaults mirror Gradescope's (10 min, 768 MB)."""

    timeout_s: float = 600
    memory_mb: int = 768
    cpus: float = 1.0
    pids: int = 256
    disk_mb: int = 1024
    fsize_mb: int = 256
    nofile: int = 1024
    strict: bool = False
    stdout_bytes: int = 1 << 20
    results_bytes: int = 1 << 20

    @classmethod
    def from_settings(cls, settings: Settings, overrides: Mapping[str, Any] | None = None) -> Limits:
        limits = cls(
            timeout_s=settings.grade_timeout_s,
            memory_mb=settings.grade_memory_mb,
            cpus=settings.grade_cpus,
            pids=settings.grade_pids_limit,
            disk_mb=settings.grade_disk_mb,
            fsize_mb=min(settings.grade_fsize_mb, settings.grade_disk_mb),
            nofile=settings.grade_nofile,
            strict=settings.grade_strict,
            stdout_bytes=settings.grade_stdout_bytes,
            results_bytes=settings.grade_results_bytes,
        )
        return limits.with_overrides(overrides or {})

    def with_overrides(self, overrides: Mapping[str, Any]) -> Limits:
        """Apply an assignment's ``limits`` JSON (unknown keys ignored, timeout capped)."""
        known = {k: v for k, v in overrides.items() if k in LIMIT_KEYS and v is not None}
        limits = replace(self, **known)
        if limits.timeout_s > MAX_TIMEOUT_S:
            limits = replace(limits, timeout_s=MAX_TIMEOUT_S)
        return limits


@dataclass(frozen=True)
class Job:
    """Everything an executor needs; ``files`` maps paths relative to ``/autograder`` to bytes
    (``submission/...`` and ``submission_metadata.json``)."""

    job_id: str
    image: str
    files: Mapping[str, bytes]
    limits: Limits = field(default_factory=Limits)
    # Where the scheduler placed the job; the Kubernetes executor pins its pod there.
    region: str | None = None


@dataclass
class ExecutionResult:
    outcome: Outcome
    message: str
    results: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    exit_code: int | None = None
    runtime_s: float = 0.0
    cpu_s: float | None = None
    memory_peak_bytes: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # "gvisor" or "runc": the kernel the student's code ran on (executors/sandbox.py)
    sandbox: str | None = None


class Executor(Protocol):
    """A grading backend (Docker, Kubernetes)."""

    name: str

    def run(self, job: Job) -> ExecutionResult:
        """Run ``/autograder/run_autograder`` for ``job`` and collect its results."""
        ...

    def janitor(self) -> int:
        """Remove leftovers of jobs this worker (or a crashed one) started; return the count."""
        ...
