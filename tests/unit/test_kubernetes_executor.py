"""The Kubernetes executor's control flow against a fake at the kubernetes client boundary
(see kube_fake.py): success, autograder failure, deadline, OOM, 410 Gone during the watch,
log reading, clean-up (Background propagation, Secret deletion) and the janitor."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import V1JobCondition, V1JobStatus

from greengrader.errors import ExecutorError
from greengrader.grading.executors import get_executor
from greengrader.grading.executors.base import Job, Limits
from greengrader.grading.executors.kube_log import log_limit_bytes, parse_log
from greengrader.grading.executors.kube_manifests import MAIN
from greengrader.grading.executors.kubernetes import KubernetesExecutor
from greengrader.settings import Settings
from tests.unit.kube_fake import (
    Behaviour,
    FakeBatchV1Api,
    FakeCluster,
    FakeCoreV1Api,
    FakeWatch,
    install_image,
)

RESULTS = {"score": 10, "tests": [{"name": "t1", "score": 10, "max_score": 10}]}
WRITES_RESULTS = (
    "echo running tests\ncat submission/hello.py\n"
    f"printf '%s' '{json.dumps(RESULTS)}' > results/results.json\n"
)
FILES = {"submission/hello.py": b"print('hello from the student')\n", "submission_metadata.json": b"{}"}


def _executor(tmp_path: Path, script: str, behaviour: Behaviour | None = None) -> tuple[KubernetesExecutor, FakeCluster]:
    image = tmp_path / "image"
    install_image(image, script)
    cluster = FakeCluster(image_dir=image, scratch=tmp_path / "nodes", behaviour=behaviour or Behaviour())
    settings = Settings(_env_file=None, k8s_namespace="grading", k8s_watch_timeout_s=30)  # type: ignore[call-arg]
    executor = KubernetesExecutor(
        settings=settings, batch_api=FakeBatchV1Api(cluster), core_api=FakeCoreV1Api(cluster),
        watch_factory=lambda: FakeWatch(cluster), worker="w1",
    )
    return executor, cluster


def _job(limits: Limits | None = None, **kw: Any) -> Job:
    return Job(job_id="sub-1", image="img:1", files=FILES, limits=limits or Limits(timeout_s=30), region="us-east", **kw)


def _calls(cluster: FakeCluster, kind: str) -> list[dict[str, Any]]:
    return [args for name, args in cluster.calls if name == kind]


def _assert_cleaned(cluster: FakeCluster) -> None:
    assert cluster.jobs == {} and cluster.secrets == {}
    assert cluster.pods == {}, "pods were orphaned"
    assert all(d["propagation_policy"] == "Background" for d in _calls(cluster, "delete_job"))


def test_success_reads_results_from_the_log_and_cleans_up(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS)
    result = executor.run(_job())
    assert result.outcome == "graded", result.message
    assert result.results == RESULTS
    assert "running tests" in result.stdout and "hello from the student" in result.stdout
    assert result.exit_code == 0 and result.runtime_s > 0
    assert result.details["region"] == "us-east" and result.details["node"] == "node-a-1"
    (create,) = _calls(cluster, "create_job")
    assert create["namespace"] == "grading" and create["region"] == [["us-east"]]
    (log_read,) = _calls(cluster, "read_log")
    assert log_read["container"] == MAIN and log_read["limit_bytes"] == log_limit_bytes(_job().limits)
    assert len(_calls(cluster, "delete_job")) == 1 and len(_calls(cluster, "delete_secret")) == 1
    _assert_cleaned(cluster)


def test_region_falls_back_to_the_executor_then_the_default(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS)
    executor.region = "us-central"
    job = Job(job_id="sub-2", image="img:1", files=FILES)
    assert executor.run(job).details["region"] == "us-central"
    executor.region = None
    assert executor.run(job).details["region"] == executor.settings.default_region
    _assert_cleaned(cluster)


def test_autograder_failure_without_results(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, "echo 'Traceback: boom' >&2\nexit 3\n")
    result = executor.run(_job())
    assert result.outcome == "failed"
    assert "did not write" in result.message and "exit code 3" in result.message
    assert "Traceback: boom" in result.stdout
    _assert_cleaned(cluster)


def test_printed_into_results_is_a_clear_failure(tmp_path: Path) -> None:
    executor, _ = _executor(tmp_path, "echo 'score: 10' > results/results.json\n")
    result = executor.run(_job())
    assert result.outcome == "failed" and "not valid JSON" in result.message


def test_in_container_timeout(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, "echo start\nsleep 20\n")
    result = executor.run(_job(Limits(timeout_s=1)))
    assert result.outcome == "timeout" and "1 s" in result.message
    assert result.exit_code == 124 and result.stdout.strip() == "start"
    _assert_cleaned(cluster)


def test_deadline_exceeded(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(kind="deadline"))
    result = executor.run(_job())
    assert result.outcome == "timeout"
    assert result.stdout == "still working...\n" or "still working" in result.stdout
    _assert_cleaned(cluster)


def test_deadline_after_the_pod_was_removed(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(kind="deadline_pod_gone"))
    assert executor.run(_job()).outcome == "timeout"
    assert _calls(cluster, "read_log") == []
    _assert_cleaned(cluster)


def test_unschedulable_pod_is_a_placement_failure_naming_the_reason(tmp_path: Path) -> None:
    from greengrader.errors import PlacementFailed

    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(kind="unschedulable"))
    with pytest.raises(PlacementFailed) as failed:
        executor.run(_job())
    assert "never started in us-east" in str(failed.value) and "node affinity" in str(failed.value)
    assert _calls(cluster, "read_log") == []  # no log read while the container never ran
    _assert_cleaned(cluster)


def test_out_of_memory(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(kind="oom"))
    result = executor.run(_job(Limits(timeout_s=30, memory_mb=256)))
    assert result.outcome == "oom" and "256 MB" in result.message
    assert result.details["oom_killed"] is True
    _assert_cleaned(cluster)


def test_delivery_failure_is_a_setup_error(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(corrupt_payload=True))
    result = executor.run(_job())
    assert result.outcome == "setup_error" and "could not be delivered" in result.message
    assert "gzip" in result.message or "tar" in result.message  # the init container's own words
    assert _calls(cluster, "read_log") == []
    _assert_cleaned(cluster)


def test_410_gone_during_the_watch_relists_and_finds_the_result(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(gone_watches=1))
    result = executor.run(_job())
    assert result.outcome == "graded" and result.results == RESULTS
    lists = [c for c in _calls(cluster, "list_jobs") if c["field_selector"]]
    assert len(lists) == 2  # the initial list and the re-list after 410
    (watch,) = _calls(cluster, "watch")
    assert watch["resource_version"] == "101"
    _assert_cleaned(cluster)


def test_quiet_watch_timeouts_relist_until_done(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(quiet_watches=2))
    assert executor.run(_job()).outcome == "graded"
    watches = _calls(cluster, "watch")
    assert len(watches) == 3 and all(0 < w["timeout_seconds"] <= 30 for w in watches)


def test_api_failure_becomes_executor_error_and_still_cleans_up(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(watch_error=500))
    with pytest.raises(ExecutorError, match="500"):
        executor.run(_job())
    _assert_cleaned(cluster)


def test_output_flood_is_capped_and_results_survive(tmp_path: Path) -> None:
    script = "i=0; while [ $i -lt 2000 ]; do echo flood-line-$i; i=$((i+1)); done\n" + WRITES_RESULTS
    executor, _ = _executor(tmp_path, script)
    result = executor.run(_job(Limits(timeout_s=30, stdout_bytes=1024)))
    assert result.outcome == "graded" and result.results == RESULTS
    assert result.output_truncated and len(result.stdout.encode()) <= 1024
    assert "cut at 1024 bytes" in result.message


def test_oversized_submission_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS)
    big = {"submission/blob.bin": os.urandom(2 * 1024 * 1024)}
    result = executor.run(Job(job_id="big", image="img:1", files=big, region="us-east"))
    assert result.outcome == "error" and "object storage" in result.message
    assert cluster.calls == []


def test_janitor_removes_finished_jobs_and_orphaned_secrets(tmp_path: Path) -> None:
    executor, cluster = _executor(tmp_path, WRITES_RESULTS)
    # A crashed worker left a finished job with its secret, and one secret without a job.
    batch, core = FakeBatchV1Api(cluster), FakeCoreV1Api(cluster)
    labels = {"app.kubernetes.io/managed-by": "greengrader", "greengrader.io/role": "grader"}
    for name in ("gg-done", "gg-live"):
        batch.create_namespaced_job("grading", {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "grading", "labels": labels},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c"}]}}},
        })
    cluster.job_status["gg-done"] = V1JobStatus(conditions=[V1JobCondition(type="Complete", status="True")])
    cluster.created["gg-live"] -= timedelta(minutes=5)  # running, but well within the longest job
    for name in ("gg-done", "gg-live", "gg-orphan"):
        core.create_namespaced_secret("grading", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels}, "data": {},
        })
    assert executor.janitor() == 3
    assert set(cluster.jobs) == {"gg-live"} and set(cluster.secrets) == {"gg-live"}


def test_resolved_by_name_without_touching_a_cluster() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    executor = get_executor("kubernetes", settings)
    assert isinstance(executor, KubernetesExecutor) and executor.name == "kubernetes"
    assert executor._batch is None  # clients are created on first use only


# --- the log protocol ---------------------------------------------------------------------

def _block(nonce: str, payload: bytes, rc: int = 0, state: str = "ok") -> str:
    import base64

    body = base64.encodebytes(payload).decode() if state == "ok" else ""
    return (f"\n@@GG-RESULTS {nonce} rc={rc} runtime_ns=1500000000 output_bytes=5 results={state}@@\n"
            f"{body}@@GG-END {nonce}@@\n")


def test_parse_log_last_block_wins() -> None:
    forged = _block("n1", b'{"score": 100}')
    log = "hello" + forged + _block("n1", b'{"score": 3}')
    report = parse_log(log, "n1")
    assert report.raw_results == b'{"score": 3}'
    assert report.runtime_s == pytest.approx(1.5) and report.exit_code == 0
    assert report.output.startswith("hello")


def test_parse_log_problems() -> None:
    assert parse_log("no marker at all", "n1").problem is not None
    assert parse_log("x" + _block("other", b"{}"), "n1").raw_results is None  # wrong nonce
    assert parse_log(_block("n1", b"", state="missing"), "n1").problem == "missing"
    assert "too large" in (parse_log(_block("n1", b"", state="too_large:99"), "n1").problem or "")
    cut = _block("n1", b'{"score": 1}').split("@@GG-END")[0]
    assert parse_log(cut, "n1").problem == "cut short in the log"


def test_without_the_client_library_a_run_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from greengrader.errors import ConfigError

    monkeypatch.setitem(sys.modules, "kubernetes", None)  # `import kubernetes` raises ImportError
    executor = KubernetesExecutor(Settings(_env_file=None))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"pip install 'greengrader\[k8s\]'"):
        executor.run(_job())
