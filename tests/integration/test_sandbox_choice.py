"""GREENGRADER_SANDBOX against the real Docker daemon: gVisor by default where it is
registered, runc with a warning in the Result where it is not, never runc when required."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from greengrader.errors import ExecutorError
from greengrader.grading.executors.base import Job, Limits
from greengrader.grading.executors.docker import DockerExecutor
from greengrader.grading.executors.sandbox import sandbox_in_use
from greengrader.grading.images import ImageBuilder
from greengrader.settings import load_settings

pytestmark = pytest.mark.docker

SOURCE = {"run_autograder": b"#!/bin/sh\nuname -r\necho '{\"score\": 1}' > /autograder/results/results.json\n"}
FILES = {"submission/x": b"", "submission_metadata.json": b"{}"}


def run(docker_client: Any, home: Path, **settings: Any) -> Any:
    config = load_settings(home=home, **settings)
    executor = DockerExecutor(config, client=docker_client, worker=f"test-{uuid.uuid4().hex[:6]}")
    image = ImageBuilder(config, client=docker_client).ensure(SOURCE, "sandbox-choice").tag
    try:
        return executor.run(Job(f"choice-{uuid.uuid4().hex[:6]}", image, FILES, Limits(timeout_s=30)))
    finally:
        executor.drain()


def test_default_grades_under_gvisor(docker_client: Any, base_image: str, tmp_path: Path) -> None:
    result = run(docker_client, tmp_path)
    assert (result.outcome, result.sandbox) == ("graded", "gvisor")
    assert result.stdout.strip() == "4.4.0" and "Warning" not in result.message
    assert sandbox_in_use(load_settings(home=tmp_path), docker_client).runtime == "runsc"


def test_without_the_gvisor_runtime_auto_grades_under_runc_and_says_so(
    docker_client: Any, base_image: str, tmp_path: Path
) -> None:
    result = run(docker_client, tmp_path, gvisor_runtime="no-such-runtime")
    assert (result.outcome, result.sandbox) == ("graded", "runc")
    assert "Warning: student code runs on the host kernel (runc)" in result.message


def test_required_gvisor_is_an_infrastructure_error_when_missing(
    docker_client: Any, base_image: str, tmp_path: Path
) -> None:
    with pytest.raises(ExecutorError, match="GREENGRADER_SANDBOX=gvisor"):
        run(docker_client, tmp_path, sandbox="gvisor", gvisor_runtime="no-such-runtime")
