"""Run one autograder job in a hardened, throw-away Docker container (docker SDK).

Gradescope semantics: ``/autograder/run_autograder`` runs as root with a writable
``/autograder``. Isolation comes from the container, not from the user: no network, all
capabilities dropped except the few a root autograder needs, ``no-new-privileges``, pids,
memory (= memory + swap), CPU, file-size and open-file limits, a disk budget enforced by
polling the container's writable layer, and a wall clock enforced by killing the container
(``wait(timeout=)`` is only an HTTP read timeout). Strict mode (per assignment) adds a
read-only root, a tmpfs ``/tmp`` and a non-root user; then ``/autograder`` is a per-job
volume, because ``put_archive`` cannot write to a read-only root.

Every container carries the labels ``greengrader.job`` and ``greengrader.worker`` and is
removed in ``finally``; :meth:`DockerExecutor.janitor` removes leftovers after a crash.
The OCI runtime is gVisor's ``runsc`` where the daemon has it (executors/sandbox.py).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import logging
import socket
import tarfile
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from greengrader.errors import ExecutorError
from greengrader.grading.executors.base import ExecutionResult, Job, Limits, Outcome
from greengrader.grading.executors.sandbox import SandboxChoice, choose, daemon_runtimes
from greengrader.settings import Settings, get_settings
from greengrader.times import parse_instant

log = logging.getLogger(__name__)

LABEL_JOB = "greengrader.job"
EXIT_SIGTERM = 128 + 15
LABEL_WORKER = "greengrader.worker"
NOBODY = 65534
# A root autograder copies files, chowns them to a student user and drops to it
# (`su`/`runuser`), and kills what it started; nothing else is added back. With
# no-new-privileges no setuid binary can regain what was dropped.
ROOT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
KILL_GRACE_S = 2.0  # the in-container `timeout -s KILL` fires first; the host kill is a backstop
STALE_AFTER_S = 2400 + 600  # a container older than the longest possible job is a leftover
# How long the daemon's runtimes are trusted: a runtime registered later (SIGHUP) is used
# within a minute without restarting the worker.
SANDBOX_RECHECK_S = 60.0
# Interval of the disk-budget poll: a disk filler overshoots by at most its write rate times this.
DISK_POLL_S = 1.0

ENV_FILES = "GREENGRADER_FILES"
ENV_MAX_B64 = 96 * 1024  # below the kernel's 128 KiB per-string limit; larger jobs use put_archive

# PID 1 is docker-init. The shell unpacks small jobs from the environment (no
# put_archive round trip), runs the autograder under `timeout -s KILL`, then reports on
# stdout, framed by a per-job nonce: results.json (base64, size-capped, regular files
# only) and the container's cgroup CPU time and memory peak. Reading these from the log
# stream avoids two get_archive calls, each of which mounts the container's filesystem.
# $1 timeout (s), $2 nonce, $3 results cap (bytes).
WRAPPER = r"""
if [ -n "${GREENGRADER_FILES:-}" ]; then
  printf %s "$GREENGRADER_FILES" | base64 -d | tar -x -C / || { echo "greengrader: cannot unpack the submission" >&2; exit 97; }
fi
unset GREENGRADER_FILES
cd /autograder
timeout -s KILL "$1" /autograder/run_autograder
rc=$?
g=/sys/fs/cgroup
cpu=; mem=
[ -r $g/cpuacct/cpuacct.usage ] && cpu="cpu_ns=$(cat $g/cpuacct/cpuacct.usage)"
[ -r $g/memory/memory.max_usage_in_bytes ] && mem="mem_peak=$(cat $g/memory/memory.max_usage_in_bytes)"
[ -r $g/cpu.stat ] && cpu="cpu_us=$(sed -n 's/^usage_usec //p' $g/cpu.stat)"
[ -r $g/memory.peak ] && mem="mem_peak=$(cat $g/memory.peak)"
# No cgroupfs (gVisor): the CPU time of the waited children, from the shell itself (no fork).
if [ -z "$cpu" ] && times >/tmp/.greengrader-times 2>/dev/null; then
  { read -r _ _; read -r cu cs; } </tmp/.greengrader-times && cpu="ctimes=$cu,$cs"
fi
r=/autograder/results/results.json
if [ -L $r ]; then state="not-regular"; data=
elif [ ! -e $r ]; then state="missing"; data=
elif [ ! -f $r ]; then state="not-regular"; data=
else
  size=$(wc -c < $r)
  if [ "$size" -gt "$3" ]; then state="too-large:$size"; data=
  else state="ok"; data=$(base64 -w0 < $r)
  fi
fi
printf '\n@@%s stats rc=%s %s %s\n@@%s results %s %s\n' "$2" "$rc" "$cpu" "$mem" "$2" "$state" "$data"
exit $rc
"""


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
            try:
                self._client = docker.from_env(timeout=60)
            except DockerException as exc:
                raise ExecutorError(f"cannot reach the Docker daemon: {exc}") from exc
            # requests would scan the whole environment for proxy settings on every call
            # (~a few ms each, ten calls per job); the daemon is never behind an HTTP proxy.
            self._client.api.trust_env = False
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
            packed = None if job.limits.strict else base64.b64encode(job_tar(job.files, prefix="autograder/"))
            inline = packed is not None and len(packed) <= ENV_MAX_B64
            nonce = uuid.uuid4().hex
            t0 = time.monotonic()
            container = self._create(job, volume.name if volume else None, nonce, packed if inline else None,
                                     sandbox)
            if not inline:
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

    def _labels(self, job: Job) -> dict[str, str]:
        return {LABEL_JOB: job.job_id, LABEL_WORKER: self.worker}

    def _create(self, job: Job, volume: str | None, nonce: str, packed: bytes | None, sandbox: SandboxChoice) -> Any:
        limits = job.limits
        memory = f"{limits.memory_mb}m"
        options: dict[str, Any] = {
            "command": ["/bin/sh", "-c", WRAPPER, "greengrader-run", str(int(limits.timeout_s)), nonce,
                        str(limits.results_bytes)],
            "environment": {ENV_FILES: packed.decode()} if packed else {},
            "labels": self._labels(job),
            "detach": True,
            "init": True,
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": sandbox.pids_limit(limits.pids),
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(limits.cpus * 1e9),
            "oom_score_adj": 500,
            "ulimits": [
                Ulimit(name="fsize", soft=limits.fsize_mb << 20, hard=limits.fsize_mb << 20),
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="core", soft=0, hard=0),
            ],
            "log_config": LogConfig(
                # The daemon keeps at most two files of this size: the disk never fills
                # and we read back at most ~2x the cap (the last part of the output).
                type="json-file", config={"max-size": str(log_cap(limits)), "max-file": "2"}
            ),
            "working_dir": "/autograder",
            "hostname": "autograder",
        }
        if sandbox.runtime:
            options["runtime"] = sandbox.runtime
        if limits.strict:
            options |= {
                "read_only": True,
                "user": f"{NOBODY}:{NOBODY}",
                "tmpfs": {"/tmp": f"size={limits.disk_mb}m,mode=1777,nosuid,nodev"},  # noqa: S108
                "volumes": {volume: {"bind": "/autograder", "mode": "rw"}},
            }
        else:
            options["cap_add"] = ROOT_CAPS
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
        result.outcome, result.message, result.results = classify(
            limits, stopped, bool(state.get("OOMKilled")), state.get("ExitCode"),
            container_runtime(state) or runtime, raw, problem,
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
        for container in self.client.containers.list(all=True, filters={"label": LABEL_JOB}):
            mine = container.labels.get(LABEL_WORKER) == self.worker
            created = _parse_time(container.attrs.get("Created", ""))
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
        """Remove this worker's job containers that exited more than ``older_than_s`` ago,
        or were created but never started ``unstarted_after_s`` ago.

        A pool process killed or cancelled mid-job (SIGTERM on a broker connection loss,
        SIGKILL) never reaches its ``finally``; killed between create and start, it leaves a
        container that never runs. The worker's main process calls this periodically.
        Containers that just exited are left to the job still reading them.
        """
        removed = 0
        now = datetime.now(UTC).timestamp()
        filters = {"label": f"{LABEL_WORKER}={self.worker}", "status": ["exited", "dead", "created"]}
        for container in self.client.containers.list(all=True, filters=filters):
            with contextlib.suppress(NotFound, APIError):
                attrs = self.client.api.inspect_container(container.id)
                state = attrs["State"]
                if state.get("Status") == "created":
                    since, wait = _parse_time(attrs.get("Created", "")), unstarted_after_s
                else:
                    since, wait = _parse_time(state.get("FinishedAt", "")), older_than_s
                if since is not None and now - since < wait:
                    continue
                container.remove(force=True)
                removed += 1
        return removed

    def leftovers(self) -> list[str]:
        """Names of containers carrying our job label (for tests and health)."""
        return [c.name for c in self.client.containers.list(all=True, filters={"label": LABEL_JOB})]


# --- helpers (pure where possible) ----------------------------------------------------------


def job_tar(files: Mapping[str, bytes], *, uid: int = 0, prefix: str = "") -> bytes:
    """An in-memory tar of the job's files plus the writable ``results/`` and stats dirs."""
    buf = io.BytesIO()
    dirs = {"submission", "results"}
    for path in files:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs):
            info = tarfile.TarInfo(prefix + name)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, uid
            info.mtime = int(time.time())
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(prefix + name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, uid, uid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def log_cap(limits: Limits) -> int:
    """Bytes of log kept per file: the output cap plus room for the base64 report."""
    return limits.stdout_bytes + limits.results_bytes * 4 // 3 + 8192


def read_capped(chunks: Iterable[bytes], cap: int) -> tuple[bytes, bool]:
    """The last ``cap`` bytes of a stream (memory bounded by 2x cap); and whether any was cut."""
    out = bytearray()
    truncated = False
    for chunk in chunks:
        out += chunk
        if len(out) > 2 * cap:
            del out[: len(out) - cap]
            truncated = True
    if len(out) > cap:
        del out[: len(out) - cap]
        truncated = True
    return bytes(out), truncated


def split_report(log: bytes, nonce: str, cap: int) -> tuple[bytes, dict[str, Any], bytes | None, str | None]:
    """Separate the wrapper's framed report from the autograder's output.

    Returns (output, stats, results.json bytes or None, problem). The last report wins;
    a student who prints a fake one could as well have written results.json (root).
    """
    marker = f"\n@@{nonce} stats ".encode()
    at = log.rfind(marker)
    if at < 0:
        return log, {}, None, "missing (the autograder was killed before it finished)"
    output, report = log[:at], log[at + 1 :]
    stats: dict[str, Any] = {}
    raw: bytes | None = None
    problem: str | None = "missing"
    for line in report.split(b"\n"):
        parts = line.decode("ascii", errors="replace").split(" ")
        if len(parts) < 2 or parts[0] != f"@@{nonce}":
            continue
        if parts[1] == "stats":
            stats = parse_stats(parts[2:])
        elif parts[1] == "results" and len(parts) >= 3:
            raw, problem = _decode_report(parts[2], parts[3] if len(parts) > 3 else "", cap)
    return output, stats, raw, problem


def _decode_report(state: str, data: str, cap: int) -> tuple[bytes | None, str | None]:
    if state == "ok":
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error:
            return None, "unreadable (its report was mangled by interleaved output)"
        return (raw, None) if len(raw) <= cap else (None, f"too large (limit {cap} bytes)")
    if state.startswith("too-large:"):
        return None, f"too large ({state.partition(':')[2]} bytes, limit {cap})"
    return None, {"missing": "missing", "not-regular": "not a regular file"}.get(state, state)


def parse_stats(fields: list[str]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for item in fields:
        key, _, value = item.partition("=")
        if key == "ctimes":
            with contextlib.suppress(ValueError):
                stats["cpu_s"] = sum(_shell_time(part) for part in value.strip().split(","))
            continue
        if not value.strip().isdigit():
            continue
        number = int(value.strip())
        if key == "cpu_ns":
            stats["cpu_s"] = number / 1e9
        elif key == "cpu_us":
            stats["cpu_s"] = number / 1e6
        elif key in ("mem_peak", "rc"):
            stats[key] = number
    return stats


def _shell_time(value: str) -> float:
    """``1m2.500000s`` (the shell's ``times``) in seconds."""
    minutes, _, seconds = value.partition("m")
    return int(minutes) * 60 + float(seconds.rstrip("s"))


def container_runtime(state: Mapping[str, Any]) -> float | None:
    start, end = _parse_time(state.get("StartedAt", "")), _parse_time(state.get("FinishedAt", ""))
    if start is None or end is None or end < start:
        return None
    return end - start


def _parse_time(value: str) -> float | None:
    """Epoch seconds of a Docker timestamp; None for its "never" (year 1) or nothing."""
    if not value or value.startswith("0001-"):
        return None
    try:
        return parse_instant(value).timestamp()
    except ValueError:
        return None


def classify(
    limits: Limits,
    stopped: str | None,
    oom_killed: bool,
    exit_code: int | None,
    runtime_s: float,
    raw: bytes | None,
    problem: str | None,
) -> tuple[Outcome, str, dict[str, Any] | None]:
    """Outcome and TA-readable message from what the container left behind."""
    if stopped == "disk":
        return "failed", f"The autograder wrote more than {limits.disk_mb} MB to disk and was stopped.", None
    timed_out = stopped == "timeout" or (
        exit_code in (124, 137) and not oom_killed and runtime_s >= limits.timeout_s - 0.5
    )
    if timed_out:
        return "timeout", f"The autograder did not finish within {limits.timeout_s:g} s and was stopped.", None
    results, why = decode_results(raw, problem)
    if results is None:
        if oom_killed:
            return "oom", f"The autograder ran out of memory (limit {limits.memory_mb} MB) and was killed.", None
        return "failed", f"{why} (autograder exit code {exit_code}).", None
    notes = []
    if oom_killed:
        notes.append(f"a process ran out of memory (limit {limits.memory_mb} MB) and was killed")
    if exit_code:
        notes.append(f"run_autograder exited with code {exit_code}")
    message = "Graded." + (" Note: " + "; ".join(notes) + "." if notes else "")
    return "graded", message, results


def decode_results(raw: bytes | None, problem: str | None) -> tuple[dict[str, Any] | None, str]:
    if raw is None:
        if problem == "missing":
            return None, "The autograder did not write /autograder/results/results.json"
        return None, f"/autograder/results/results.json is {problem}"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, (
            "results.json is not valid JSON — often the autograder printed into it "
            f"({str(exc)[:120]}; starts with {raw[:60]!r})"
        )
    if not isinstance(data, dict):
        return None, "results.json is not a JSON object"
    return data, ""
