"""Run one autograder job in a hardened, throw-away Docker container (docker SDK).

The container's options are in ``docker_container`` and the wrapper that reports back on
stdout in ``docker_report``. Here: a disk budget enforced by polling the container's
writable layer, a wall clock enforced by killing the container (``wait(timeout=)`` is only
an HTTP read timeout), and removal.

Every container carries the labels ``greengrader.job`` and ``greengrader.worker`` and is
removed in ``finally``; :meth:`DockerExecutor.janitor` removes leftovers after a crash.
The OCI runtime is gVisor's ``runsc`` where the daemon has it (executors/sandbox.py).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import uuid
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from greengrader.errors import ExecutorError
from greengrader.grading.executors.archive import job_tar, unpack_script
from greengrader.grading.executors.base import ExecutionResult, Job, Limits
from greengrader.grading.executors.docker_client import connect
from greengrader.grading.executors.docker_container import (
    ENV_MAX_CHARS,
    NOBODY,
    container_options,
    container_runtime,
    docker_time,
)
from greengrader.grading.executors.docker_report import log_cap, read_capped, split_report
from greengrader.grading.executors.outcome import RunEnd, Verdict, classify
from greengrader.grading.executors.sandbox import SandboxChoice, choose, daemon_runtimes
from greengrader.settings import Settings, get_settings

log = logging.getLogger(__name__)

LABEL_JOB = "greengrader.job"
EXIT_SIGTERM = 128 + 15
LABEL_WORKER = "greengrader.worker"
# Epoch second by which the job's own wait has killed its container. A container still
# running past it belongs to a pool process that died mid-job; the worker's periodic
# cleanup kills it, so the wall clock holds without a `timeout` process in the container.
LABEL_DEADLINE = "greengrader.deadline"
# The wall clock is enforced from the host (an in-container `timeout` would be one more
# process, costly under gVisor): from the moment start() returns, plus the time the kill takes.
KILL_GRACE_S = 0.5
# Another worker's clock may differ from ours (the deadline is its epoch second).
OTHERS_GRACE_S = 60.0
STALE_AFTER_S = 2400 + 600  # a container older than the longest possible job is a leftover
# How long the daemon's runtimes are trusted: a runtime registered later (SIGHUP) is used
# within a minute without restarting the worker.
SANDBOX_RECHECK_S = 60.0
# Interval of the disk-budget poll: a disk filler overshoots by at most its write rate times this.
DISK_POLL_S = 1.0


class DockerExecutor:
    """The default executor; one instance per worker process (the client is created lazily)."""

    name = "docker"

    def __init__(
        self,
        settings: Settings | None = None,
        client: docker.DockerClient | None = None,
        worker: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._client = client
        self.worker = worker or socket.gethostname()
        self._pool = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="gg-remove")
        self._removals: list[futures.Future[None]] = []
        # Removals that failed (daemon restarting): retried before the next job.
        self._unremoved: list[Any] = []
        self._sandbox: tuple[SandboxChoice, float] | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect(60)
        return self._client

    def sandbox(self) -> SandboxChoice:
        """gVisor or runc for the next job (GREENGRADER_SANDBOX against the daemon's runtimes)."""
        now = time.monotonic()
        if self._sandbox is None or now - self._sandbox[1] > SANDBOX_RECHECK_S:
            self._sandbox = (choose(self.settings, daemon_runtimes(self.client)), now)
            if self._sandbox[0].warning:
                log.warning("%s", self._sandbox[0].warning)
        return self._sandbox[0]

    # --- the job -------------------------------------------------------------------------

    def run(self, job: Job) -> ExecutionResult:
        volume = None
        container = None
        self._retry_removals()
        try:
            sandbox = self.sandbox()
            if job.limits.strict:
                volume = self.client.volumes.create(
                    f"gg-{job.job_id}-{uuid.uuid4().hex[:8]}", labels=self._labels(job)
                )
            packed = self._inline_files(job)
            nonce = uuid.uuid4().hex
            t0 = time.monotonic()
            container = self._create(job, volume.name if volume else None, nonce, packed, sandbox)
            if packed is None:
                uid = NOBODY if job.limits.strict else 0
                dest, prefix = ("/autograder", "") if job.limits.strict else ("/", "autograder/")
                if not container.put_archive(dest, job_tar(job.files, uid=uid, prefix=prefix)):
                    raise ExecutorError("could not copy the submission into the container")
            result = self._execute(container, job, nonce, t0)
            sandbox.annotate(result, job.limits)
            if sandbox.warning:
                result.message += f" Warning: {sandbox.warning}."
            return result
        except ImageNotFound as exc:
            raise ExecutorError(f"image {job.image} is not on this Docker host") from exc
        except (APIError, requests.RequestException, DockerException) as exc:
            raise ExecutorError(f"Docker failed while grading job {job.job_id}: {exc}") from exc
        finally:
            self._remove_later(container, volume)

    @staticmethod
    def _inline_files(job: Job) -> str | None:
        """Shell commands for the environment that write the job's files (no put_archive round
        trip, and no process for a flat submission), or None to copy them in with put_archive."""
        if job.limits.strict:
            return None
        packed = unpack_script(job.files)
        return packed if len(packed) <= ENV_MAX_CHARS else None

    def _labels(self, job: Job) -> dict[str, str]:
        return {LABEL_JOB: job.job_id, LABEL_WORKER: self.worker}

    def _create(self, job: Job, volume: str | None, nonce: str, packed: str | None, sandbox: SandboxChoice) -> Any:
        deadline = time.time() + job.limits.timeout_s + KILL_GRACE_S
        labels = self._labels(job) | {LABEL_DEADLINE: str(int(deadline) + 1)}
        options = container_options(job, labels=labels, volume=volume, nonce=nonce, packed=packed, sandbox=sandbox)
        return self.client.containers.create(job.image, **options)

    def _execute(self, container: Any, job: Job, nonce: str, t0: float) -> ExecutionResult:
        limits = job.limits
        started_at = datetime.now(UTC)
        container.start()
        stopped = self._wait(container, limits, time.monotonic())
        # Runtime as `docker run` would report it: create, start, run, exit (host clock).
        runtime = time.monotonic() - t0
        finished_at = datetime.now(UTC)
        state = self.client.api.inspect_container(container.id)["State"]
        log, cut = read_capped(container.logs(stdout=True, stderr=True, stream=True), log_cap(limits))
        output, stats, raw, problem = split_report(log, nonce, limits.results_bytes)
        if stopped is None and state.get("ExitCode") == EXIT_SIGTERM and not stats:
            # We only ever SIGKILL, and the wrapper reports unless it was killed itself: a
            # SIGTERM to the whole container is the daemon shutting down (or `docker stop`),
            # an infrastructure failure, never the student's grade.
            raise ExecutorError(f"job {job.job_id} was stopped by the Docker daemon (restart or docker stop)")
        truncated = cut or len(output) > limits.stdout_bytes
        if len(output) > limits.stdout_bytes:
            output = output[-limits.stdout_bytes:]
        if truncated:
            output = b"[earlier output cut]\n" + output
        result = ExecutionResult(
            outcome="graded",
            message="",
            stdout=output.decode("utf-8", errors="replace"),
            output_truncated=truncated,
            exit_code=state.get("ExitCode"),
            runtime_s=runtime,
            cpu_s=stats.get("cpu_s"),
            memory_peak_bytes=stats.get("mem_peak"),
            started_at=started_at,
            finished_at=finished_at,
            details={"oom_killed": bool(state.get("OOMKilled")), "stopped": stopped, "reported": bool(stats),
                     "container_runtime_s": container_runtime(state)},
        )
        result.outcome, result.message, result.results = container_verdict(
            limits, stopped, bool(state.get("OOMKilled")), state.get("ExitCode"), raw, problem,
        )
        if truncated:
            result.message += f" Output was cut to its last {limits.stdout_bytes} bytes."
        return result

    def _wait(self, container: Any, limits: Limits, t0: float) -> str | None:
        """Wait for exit; kill on the wall clock or the disk budget. Returns why we stopped it."""
        deadline = t0 + limits.timeout_s + KILL_GRACE_S
        poll = DISK_POLL_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill(container)
                return "timeout"
            try:
                container.wait(timeout=max(0.05, min(remaining, poll)))
                return None
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                pass  # the HTTP read timed out; the container is still running
            if not limits.strict and self._disk_used(container) > limits.disk_mb << 20:
                self._kill(container)
                return "disk"

    def _disk_used(self, container: Any) -> int:
        # The writable layer's size (SizeRw); the SDK's inspect has no `size` parameter.
        api = self.client.api
        try:
            info = api._result(api._get(api._url("/containers/{0}/json", container.id), params={"size": 1}), True)
        except (APIError, requests.RequestException):
            return 0
        return int(info.get("SizeRw") or 0)

    def _kill(self, container: Any) -> None:
        with contextlib.suppress(NotFound, APIError):  # it may have exited meanwhile
            container.kill()
        with contextlib.suppress(requests.RequestException, NotFound):
            container.wait(timeout=30)

    def _remove_later(self, container: Any, volume: Any) -> None:
        # Off the critical path: the result is stored while the daemon tears down.
        if container is None and volume is None:
            return
        self._removals.append(self._pool.submit(self._remove, container, volume))

    def _remove(self, container: Any, volume: Any) -> None:
        for thing in (container, volume):
            if thing is None:
                continue
            try:
                thing.remove(force=True)
            except NotFound:
                pass
            except (APIError, requests.RequestException, DockerException):
                log.warning("could not remove %s; retrying before the next job", getattr(thing, "name", thing))
                self._unremoved.append(thing)

    def _retry_removals(self) -> None:
        pending, self._unremoved = self._unremoved, []
        for thing in pending:
            self._remove(thing, None)

    def drain(self, timeout: float = 60) -> None:
        """Wait for pending container removals (tests, shutdown)."""
        pending, self._removals = self._removals, []
        futures.wait(pending, timeout=timeout)

    # --- leftovers -----------------------------------------------------------------------

    def janitor(self, everything: bool = False) -> int:
        """Remove this worker's leftover containers and volumes (after a crash), any
        worker's that are older than the longest possible job, or all with ``everything``."""
        self.drain()
        removed = 0
        now = time.time()
        # ignore_removed: a container removed while the list is read is not an error here.
        for container in self.client.containers.list(all=True, filters={"label": LABEL_JOB}, ignore_removed=True):
            mine = container.labels.get(LABEL_WORKER) == self.worker
            created = docker_time(container.attrs.get("Created", ""))
            if everything or mine or (created is not None and now - created > STALE_AFTER_S):
                try:
                    container.remove(force=True)
                    removed += 1
                except NotFound:
                    pass
        for volume in self.client.volumes.list(filters={"label": LABEL_JOB}):
            try:
                volume.remove(force=True)
                removed += 1
            except (NotFound, APIError):
                pass  # still in use by a running job of another worker
        return removed

    def remove_exited(self, older_than_s: float = 15.0, unstarted_after_s: float = 60.0) -> int:
        """Remove this worker's job containers that exited more than ``older_than_s`` ago
        or were created but never started ``unstarted_after_s`` ago, and any worker's that
        still run ``older_than_s`` past their deadline (a minute more for another worker's).

        A pool process killed or cancelled mid-job (SIGTERM on a broker connection loss,
        SIGKILL, OOM) never reaches its ``finally`` nor its kill at the time limit; killed
        between create and start, it leaves a container that never runs. The worker's main
        process calls this periodically. Containers that just exited or just passed their
        deadline are left to the job still reading or killing them.
        """
        removed = 0
        now = datetime.now(UTC).timestamp()
        filters = {"label": LABEL_JOB, "status": ["exited", "dead", "created", "running"]}
        for container in self.client.containers.list(all=True, filters=filters, ignore_removed=True):
            with contextlib.suppress(NotFound, APIError):
                attrs = self.client.api.inspect_container(container.id)
                if container.labels.get(LABEL_WORKER) == self.worker:
                    since = _left_since(attrs, older_than_s, unstarted_after_s)
                else:  # a worker killed for good has no successor to clean up after it
                    since = _overdue_since(attrs, older_than_s + OTHERS_GRACE_S)
                if since is None or now < since:
                    continue
                container.remove(force=True)
                removed += 1
        return removed


def _left_since(attrs: dict[str, Any], older_than_s: float, unstarted_after_s: float) -> float | None:
    """From when a job container counts as left behind by its job (None: never, by itself)."""
    state, created = attrs["State"], docker_time(attrs.get("Created", ""))
    status = state.get("Status")
    if status == "created":
        return None if created is None else created + unstarted_after_s
    if status in ("exited", "dead"):
        finished = docker_time(state.get("FinishedAt", "")) or created
        return None if finished is None else finished + older_than_s
    # Running. (One listed as `created` may have been started by its job since: create ->
    # start takes ~0.3 s under gVisor.)
    return _overdue_since(attrs, older_than_s)


def _overdue_since(attrs: dict[str, Any], grace_s: float) -> float | None:
    """When a running container is ``grace_s`` past its deadline (None: not running, no deadline)."""
    if attrs["State"].get("Status") != "running":
        return None
    deadline = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_DEADLINE, "")
    return float(deadline) + grace_s if deadline.isdigit() else None


def container_verdict(
    limits: Limits,
    stopped: str | None,
    oom_killed: bool,
    exit_code: int | None,
    raw: bytes | None,
    problem: str | None,
) -> Verdict:
    """The outcome of a container run: our kills (the disk budget, the wall clock) are
    Docker's own ways to end."""
    if stopped == "disk":
        return "failed", f"The autograder wrote more than {limits.disk_mb} MB to disk and was stopped.", None
    return classify(limits, RunEnd(stopped == "timeout", oom_killed, exit_code, raw, problem))
