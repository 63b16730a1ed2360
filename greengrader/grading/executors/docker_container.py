"""The hardened grading container: its create options, and the times in its state.

Gradescope semantics: ``/autograder/run_autograder`` runs as root with a writable
``/autograder``. Isolation comes from the container, not from the user: no network, all
capabilities dropped except the few a root autograder needs, ``no-new-privileges``, pids,
memory (= memory + swap), CPU, file-size and open-file limits. Strict mode (per assignment)
adds a read-only root, a tmpfs ``/tmp`` and a non-root user; then ``/autograder`` is a
per-job volume, because ``put_archive`` cannot write to a read-only root.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from docker.types import LogConfig, Ulimit

from greengrader.grading.executors.base import Job
from greengrader.grading.executors.docker_report import ENV_FILES, WRAPPER, log_cap
from greengrader.grading.executors.sandbox import SandboxChoice
from greengrader.times import parse_instant

NOBODY = 65534
# A root autograder copies files, chowns them to a student user and drops to it
# (`su`/`runuser`), and kills what it started; nothing else is added back. With
# no-new-privileges no setuid binary can regain what was dropped.
ROOT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
ENV_MAX_CHARS = 96 * 1024  # below the kernel's 128 KiB per-string limit; larger jobs use put_archive


def container_options(
    job: Job, *, labels: Mapping[str, str], volume: str | None, nonce: str, packed: str | None,
    sandbox: SandboxChoice,
) -> dict[str, Any]:
    """Keyword arguments of ``containers.create`` for one job (``packed``: shell commands
    that write the job's files, for the environment; None when they go in by put_archive)."""
    limits = job.limits
    memory = f"{limits.memory_mb}m"
    options: dict[str, Any] = {
        "command": ["/bin/sh", "-c", WRAPPER, "greengrader-run", nonce, str(limits.results_bytes)],
        "environment": {ENV_FILES: packed} if packed else {},
        "labels": dict(labels),
        "detach": True,
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
    return options


def container_runtime(state: Mapping[str, Any]) -> float | None:
    """Seconds between the container's start and exit, as the daemon recorded them."""
    start, end = docker_time(state.get("StartedAt", "")), docker_time(state.get("FinishedAt", ""))
    if start is None or end is None or end < start:
        return None
    return end - start


def docker_time(value: str) -> float | None:
    """Epoch seconds of a Docker timestamp; None for its "never" (year 1) or nothing."""
    if not value or value.startswith("0001-"):
        return None
    try:
        return parse_instant(value).timestamp()
    except ValueError:
        return None
