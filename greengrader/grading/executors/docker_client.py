"""The Docker daemon connection the grading side uses (the executor and the image builder)."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from greengrader.errors import ExecutorError


def connect(timeout_s: int) -> docker.DockerClient:
    """A client for the local daemon; an unreachable one is our ExecutorError."""
    try:
        client = docker.from_env(timeout=timeout_s)
    except DockerException as exc:
        raise ExecutorError(f"cannot reach the Docker daemon: {exc}") from exc
    # requests would scan the whole environment for proxy settings on every call
    # (~a few ms each, ten calls per job); the daemon is never behind an HTTP proxy.
    client.api.trust_env = False
    return client
