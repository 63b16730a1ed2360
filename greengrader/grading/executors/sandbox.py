"""Which kernel student code runs on: gVisor's user-space kernel (``runsc``) or the host's (runc).

``GREENGRADER_SANDBOX`` is ``auto`` (gVisor where the Docker daemon has the
``GREENGRADER_GVISOR_RUNTIME`` runtime, else runc with a warning), ``gvisor`` (required:
grading stops with an infrastructure error rather than run on the host kernel) or ``runc``.
The choice is recorded on every Result; :func:`sandbox_in_use` reports it for operators
(health, doctor) with the same logic the executors use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from greengrader.errors import ExecutorError
from greengrader.grading.executors.base import ExecutionResult, Limits
from greengrader.settings import Settings

SandboxName = Literal["gvisor", "runc"]
GVISOR: SandboxName = "gvisor"
RUNC: SandboxName = "runc"
# On gVisor's ptrace platform the sandbox's own threads share the container's pids cgroup:
# measured here, an idle sandbox holds ~44 host threads and each student process adds ~8
# (student threads are almost free: they are goroutines of the Sentry). The host limit is
# scaled so a student still gets about GREENGRADER_GRADE_PIDS_LIMIT processes.
GVISOR_PIDS_BASE = 64
GVISOR_PIDS_PER_PROCESS = 10


@dataclass(frozen=True)
class SandboxChoice:
    """What grading containers run under; ``runtime`` is the daemon's runtime name
    (None: the daemon's default) and ``warning`` says why it is weaker than asked."""

    sandbox: SandboxName
    runtime: str | None
    warning: str | None = None

    def pids_limit(self, processes: int) -> int:
        """The container's pids limit that allows ``processes`` student processes."""
        if self.sandbox == GVISOR:
            return GVISOR_PIDS_BASE + GVISOR_PIDS_PER_PROCESS * processes
        return processes

    def annotate(self, result: ExecutionResult, limits: Limits) -> None:
        """Record the sandbox on ``result``; explain a gVisor sandbox that died under the job.

        When the student exhausts the processes or memory the sandbox itself needs, gVisor
        stops the whole sandbox (the job's wrapper never reports) instead of failing one
        fork or killing one process as the host kernel would.
        """
        result.sandbox = self.sandbox
        if self.sandbox == GVISOR and result.outcome == "failed" and not result.details.get("reported", True) \
                and result.details.get("stopped") is None:
            result.message = (
                f"The gVisor sandbox stopped before the autograder finished (exit code {result.exit_code}): "
                f"the submission exhausted its processes (limit {limits.pids}) or memory "
                f"(limit {limits.memory_mb} MB)."
            )

    def describe(self) -> str:
        name = "gVisor" if self.sandbox == GVISOR else "runc (the host kernel)"
        return f"{name}{f' via runtime {self.runtime}' if self.runtime else ''}"


def choose(settings: Settings, runtimes: Iterable[str]) -> SandboxChoice:
    """The sandbox for a Docker daemon offering ``runtimes`` (``docker info``'s Runtimes).

    Raises :class:`ExecutorError` when gVisor is required and the daemon lacks it: an
    infrastructure problem (the job is retried), never a reason to run on the host kernel.
    """
    wanted, name = settings.sandbox, settings.gvisor_runtime
    if wanted == RUNC:
        return SandboxChoice(RUNC, None)
    if name in set(runtimes):
        return SandboxChoice(GVISOR, name)
    missing = f"the Docker daemon has no {name!r} runtime (gVisor); see docs/grading.md"
    if wanted == GVISOR:
        raise ExecutorError(f"GREENGRADER_SANDBOX=gvisor but {missing}")
    return SandboxChoice(RUNC, None, f"student code runs on the host kernel (runc): {missing}")


def daemon_runtimes(client: Any) -> list[str]:
    """The runtimes a Docker daemon offers (``docker.DockerClient``)."""
    info = client.info()
    return sorted((info.get("Runtimes") or {}).keys())


def kubernetes_choice(settings: Settings) -> SandboxChoice:
    """For grading pods: the RuntimeClass named by ``GREENGRADER_K8S_RUNTIME_CLASS``.

    The cluster's RuntimeClasses are not read (that needs cluster-wide RBAC); ``gvisor``
    without a configured class uses the conventional name ``gvisor`` (deploy/k8s).
    """
    if settings.sandbox == RUNC:
        return SandboxChoice(RUNC, None)
    if settings.k8s_runtime_class:
        return SandboxChoice(GVISOR, settings.k8s_runtime_class)
    if settings.sandbox == GVISOR:
        return SandboxChoice(GVISOR, "gvisor")
    return SandboxChoice(RUNC, None, "student code runs on the node's kernel: GREENGRADER_K8S_RUNTIME_CLASS "
                         "is unset (set it to the gVisor RuntimeClass, e.g. gvisor)")


def sandbox_in_use(settings: Settings, client: Any | None = None) -> SandboxChoice:
    """What the configured executor grades under right now (asks the Docker daemon).

    Raises :class:`ExecutorError` when the daemon cannot be asked or lacks a required
    gVisor; executors other than docker and kubernetes report runc with a warning.
    """
    if settings.executor == "kubernetes":
        return kubernetes_choice(settings)
    if settings.executor != "docker":
        return SandboxChoice(RUNC, None, f"the {settings.executor} executor does not report its sandbox")
    import docker
    from docker.errors import DockerException

    own = client is None
    try:
        client = client or docker.from_env(timeout=max(1, round(settings.health_timeout_s)))
        runtimes = daemon_runtimes(client)
    except (DockerException, OSError) as exc:
        raise ExecutorError(f"cannot ask the Docker daemon for its runtimes: {exc}") from exc
    finally:
        if own and client is not None:
            client.close()
    return choose(settings, runtimes)
