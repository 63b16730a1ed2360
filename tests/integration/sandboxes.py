"""Run a Docker test under each sandbox: runc (the host kernel) and gVisor (runsc).

A missing gVisor runtime fails the gVisor half of a suite (never skips it) with the
command that registers it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from greengrader.grading.executors import docker as docker_executor
from greengrader.grading.executors.docker import DockerExecutor
from greengrader.grading.executors.sandbox import daemon_runtimes
from greengrader.settings import load_settings

SANDBOXES = ("runc", "gvisor")


@contextmanager
def sandboxed_executor(sandbox: str, docker_client: Any, home: Path, **settings: Any) -> Iterator[DockerExecutor]:
    """An executor that grades under ``sandbox`` (gVisor required: never a silent fallback),
    polling the disk budget often so a disk filler is stopped close to it."""
    config = load_settings(home=home, sandbox=sandbox, **settings)
    if sandbox == "gvisor" and config.gvisor_runtime not in daemon_runtimes(docker_client):
        pytest.fail(f"the Docker daemon has no {config.gvisor_runtime!r} runtime: run scripts/setup-gvisor.sh "
                    "(or scripts/test.sh, which does)", pytrace=False)
    executor = DockerExecutor(config, client=docker_client, worker=f"test-{sandbox}-{uuid.uuid4().hex[:6]}")
    assert executor.sandbox().sandbox == sandbox
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(docker_executor, "DISK_POLL_S", 0.3)
        yield executor
