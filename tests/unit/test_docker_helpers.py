"""Pure helpers of the Docker executor: limits, the framed report, outcome messages."""

from __future__ import annotations

import base64
import io
import tarfile

import pytest

from greengrader.errors import ConfigError
from greengrader.grading.executors import get_executor
from greengrader.grading.executors.archive import job_tar
from greengrader.grading.executors.base import MAX_TIMEOUT_S, Limits
from greengrader.grading.executors.docker import DockerExecutor, container_verdict
from greengrader.grading.executors.docker_report import parse_stats, read_capped, split_report
from greengrader.settings import load_settings

NONCE = "abc123"


def report(results: bytes | None, state: str = "ok", rc: int = 0) -> bytes:
    data = base64.b64encode(results).decode() if results is not None else ""
    return (f"\n@@{NONCE} stats rc={rc} cpu_ns=2500000000 mem_peak=1048576\n"
            f"@@{NONCE} results {state} {data}\n").encode()


def test_limits_from_settings_with_assignment_overrides() -> None:
    settings = load_settings(grade_timeout_s=600, grade_memory_mb=768)
    limits = Limits.from_settings(settings, {"timeout_s": 99999, "memory_mb": 2048, "unknown": 1, "strict": True})
    assert (limits.timeout_s, limits.memory_mb, limits.strict) == (MAX_TIMEOUT_S, 2048, True)
    assert Limits.from_settings(settings).timeout_s == 600


def test_split_report_separates_output_stats_and_results() -> None:
    output, stats, raw, problem = split_report(b"hello\nworld" + report(b'{"score": 1}'), NONCE, 1024)
    assert output == b"hello\nworld"
    assert stats == {"rc": 0, "cpu_s": 2.5, "mem_peak": 1048576}
    assert (raw, problem) == (b'{"score": 1}', None)


def test_the_last_report_wins_and_foreign_nonces_are_ignored() -> None:
    fake = report(b'{"score": 100}').replace(NONCE.encode(), b"guess")
    _, _, raw, _ = split_report(b"x" + fake + report(b'{"score": 2}'), NONCE, 1024)
    assert raw == b'{"score": 2}'


@pytest.mark.parametrize(
    ("state", "expected"),
    [("missing", "missing"), ("not-regular", "not a regular file"), ("too-large:5000000", "too large (5000000 bytes")],
)
def test_problems_reported_by_the_wrapper(state: str, expected: str) -> None:
    _, _, raw, problem = split_report(report(None, state), NONCE, 1024)
    assert raw is None and problem is not None and problem.startswith(expected)


def test_no_report_means_the_autograder_was_killed() -> None:
    output, stats, raw, problem = split_report(b"partial output", NONCE, 1024)
    assert (output, stats, raw) == (b"partial output", {}, None)
    assert problem is not None and "killed" in problem


def test_read_capped_keeps_the_tail_in_bounded_memory() -> None:
    text, cut = read_capped((b"a" * 100 for _ in range(100)), 250)
    assert (len(text), cut) == (250, True)
    assert read_capped([b"short"], 250) == (b"short", False)


def test_job_tar_has_parent_dirs_and_owner() -> None:
    data = job_tar({"submission/pkg/a.py": b"x", "submission_metadata.json": b"{}"}, uid=65534, prefix="autograder/")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {"autograder/submission", "autograder/submission/pkg", "autograder/results"} <= set(members)
    assert members["autograder/submission/pkg/a.py"].uid == 65534


LIMITS = Limits(timeout_s=10, memory_mb=256, disk_mb=100)


@pytest.mark.parametrize(
    ("args", "outcome", "phrase"),
    [
        (("disk", False, 137, 3.0, None, "missing"), "failed", "more than 100 MB to disk"),
        (("timeout", False, 137, 12.0, None, "missing"), "timeout", "within 10 s"),
        ((None, False, 137, 10.0, None, "missing"), "timeout", "within 10 s"),
        ((None, True, 137, 1.0, None, "missing"), "oom", "out of memory (limit 256 MB)"),
        ((None, False, 0, 1.0, None, "missing"), "failed", "did not write /autograder/results/results.json"),
        ((None, False, 0, 1.0, b"Running tests...\n{}", None), "failed", "printed into it"),
        ((None, False, 0, 1.0, b"[1, 2]", None), "failed", "not a JSON object"),
        ((None, True, 0, 1.0, b'{"score": 1}', None), "graded", "ran out of memory"),
        ((None, False, 3, 1.0, b'{"score": 1}', None), "graded", "exited with code 3"),
    ],
)
def test_container_outcomes_and_messages(args: tuple, outcome: str, phrase: str) -> None:  # type: ignore[type-arg]
    got, message, _ = container_verdict(LIMITS, *args)
    assert got == outcome and phrase in message


def test_get_executor_by_name_and_dotted_path() -> None:
    settings = load_settings()
    assert isinstance(get_executor("docker", settings), DockerExecutor)
    assert isinstance(get_executor("greengrader.grading.executors.docker:DockerExecutor", settings), DockerExecutor)
    assert isinstance(get_executor("greengrader.grading.executors.docker.DockerExecutor", settings), DockerExecutor)
    with pytest.raises(ConfigError, match="GREENGRADER_EXECUTOR"):
        get_executor("nope.module:Thing", settings)


def test_cpu_time_from_the_shell_when_there_is_no_cgroupfs() -> None:
    assert parse_stats(["rc=0", "ctimes=0m1.250000s,1m0.500000s"]) == {"rc": 0, "cpu_s": 61.75}
    assert parse_stats(["ctimes=garbage"]) == {}
