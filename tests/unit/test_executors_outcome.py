"""One outcome classifier for every backend: timeout, OOM, missing or invalid results.json
and a non-zero exit read the same whether the run was a Docker container or a pod."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import (
    V1ContainerState,
    V1ContainerStateTerminated,
    V1ContainerStatus,
    V1Job,
    V1JobCondition,
    V1JobStatus,
    V1PodStatus,
)

from greengrader.grading.executors.base import Limits
from greengrader.grading.executors.docker import container_verdict
from greengrader.grading.executors.kube_log import LogReport
from greengrader.grading.executors.kube_manifests import INIT, MAIN
from greengrader.grading.executors.kube_outcome import pod_verdict
from greengrader.grading.executors.outcome import MISSING, RunEnd, classify, decode_results

LIMITS = Limits(timeout_s=10, memory_mb=256, disk_mb=100)
OK = b'{"score": 1}'


def end(raw: bytes | None = OK, *, exit_code: int | None = 0, oom: bool = False, timed_out: bool = False,
        problem: str | None = None) -> RunEnd:
    return RunEnd(timed_out, oom, exit_code, raw, problem if raw is not None else (problem or MISSING))


@pytest.mark.parametrize(
    ("run", "outcome", "message"),
    [
        (end(), "graded", "Graded."),
        (end(exit_code=3), "graded", "Graded. Note: run_autograder exited with code 3."),
        (end(oom=True, exit_code=137), "graded",
         "Graded. Note: a process ran out of memory (limit 256 MB) and was killed; run_autograder exited with code 137."),
        (end(timed_out=True), "timeout", "The autograder did not finish within 10 s and was stopped."),
        (end(None, oom=True, exit_code=137), "oom", "The autograder ran out of memory (limit 256 MB) and was killed."),
        (end(None, exit_code=1), "failed",
         "The autograder did not write /autograder/results/results.json (autograder exit code 1)."),
        (end(None, problem="too large (5000000 bytes)"), "failed",
         "/autograder/results/results.json is too large (5000000 bytes) (autograder exit code 0)."),
    ],
)
def test_classify(run: RunEnd, outcome: str, message: str) -> None:
    got, text, results = classify(LIMITS, run)
    assert (got, text) == (outcome, message)
    assert (results is not None) == (outcome == "graded")


def test_a_timeout_wins_over_results() -> None:
    assert classify(LIMITS, end(timed_out=True, oom=True))[0] == "timeout"


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [(b"Running tests...\n{}", "printed into it"), (b"[1, 2]", "not a JSON object"), (b"\xff\xfe", "not valid JSON")],
)
def test_invalid_results_json(raw: bytes, phrase: str) -> None:
    assert decode_results(raw, None)[0] is None
    outcome, message, results = classify(LIMITS, end(raw, exit_code=0))
    assert (outcome, results) == ("failed", None) and phrase in message


# --- both backends reach the same verdict for the same run ------------------------------------

def _pod(exit_code: int, raw: bytes | None, *, reason: str = "Completed", deadline: bool = False) -> dict[str, Any]:
    terminated = V1ContainerStateTerminated(exit_code=exit_code, reason=reason)
    delivered = V1ContainerStatus(
        name=INIT, image="i", image_id="", ready=False, restart_count=0,
        state=V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=0, reason="Completed")),
    )
    condition = V1JobCondition(type="Failed" if deadline else "Complete", status="True",
                               reason="DeadlineExceeded" if deadline else None)
    return {
        "finished": V1Job(status=V1JobStatus(conditions=[condition])),
        "pod_status": V1PodStatus(phase="Failed" if exit_code else "Succeeded", container_statuses=[
            V1ContainerStatus(name=MAIN, image="i", image_id="", ready=False, restart_count=0,
                              state=V1ContainerState(terminated=terminated)),
        ]),
        "init": delivered,
        "terminated": terminated,
        "report": LogReport("", exit_code, 1.0, 0, raw, None if raw is not None else MISSING),
    }


@pytest.mark.parametrize(
    ("docker", "pod"),
    [
        ((None, False, 0, OK, None), _pod(0, OK)),
        ((None, False, 2, OK, None), _pod(2, OK)),
        ((None, False, 1, None, MISSING), _pod(1, None)),
        ((None, False, 0, b"not json", None), _pod(0, b"not json")),
        ((None, True, 137, None, MISSING), _pod(137, None, reason="OOMKilled")),
        (("timeout", False, 137, None, MISSING), _pod(124, None)),
        (("timeout", False, 137, None, MISSING), _pod(137, None, deadline=True)),
    ],
)
def test_docker_and_kubernetes_agree(docker: tuple, pod: dict[str, Any]) -> None:  # type: ignore[type-arg]
    assert container_verdict(LIMITS, *docker) == pod_verdict(LIMITS, **pod)
