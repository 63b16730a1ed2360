"""Pure helpers of the Docker executor: limits, the framed report, outcome messages."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from greengrader.errors import ConfigError
from greengrader.grading.executors import get_executor
from greengrader.grading.executors.archive import job_tar, printf_format, unpack_script
from greengrader.grading.executors.base import MAX_TIMEOUT_S, Limits
from greengrader.grading.executors.docker import DockerExecutor, container_verdict
from greengrader.grading.executors.docker_report import parse_stats, read_capped, split_report
from greengrader.settings import load_settings

NONCE = "abc123"


def report(results: bytes | None, state: str = "ok", rc: int = 0) -> bytes:
    """The wrapper's report, as the shell prints it."""
    head = f"\n@@{NONCE} stats rc={rc} cpu_ns=2500000000 mem_peak=1048576\n@@{NONCE} results {state}\n".encode()
    return head + (results + f"\n@@{NONCE} end\n".encode() if results is not None else b"")


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


@pytest.mark.parametrize(("state", "expected"), [("missing", "missing"), ("not-regular", "not a regular file")])
def test_problems_reported_by_the_wrapper(state: str, expected: str) -> None:
    _, _, raw, problem = split_report(report(None, state), NONCE, 1024)
    assert raw is None and problem is not None and problem.startswith(expected)


def test_results_are_taken_as_they_are_up_to_the_cap() -> None:
    pretty = b'{\n  "score": 1,\n  "output": "@@ \\n end"\n}\n'  # newlines, a trailing one, marker-like text
    _, stats, raw, problem = split_report(b"out" + report(pretty), NONCE, 1024)
    assert (raw, problem, stats["rc"]) == (pretty, None, 0)
    # the wrapper sends at most cap + 1 bytes: one more than the cap is too large
    _, _, raw, problem = split_report(report(b"x" * 1025), NONCE, 1024)
    assert raw is None and problem is not None and "too large" in problem and "1024" in problem
    assert split_report(report(b"x" * 1024), NONCE, 1024)[2] == b"x" * 1024


def test_a_report_cut_before_its_end_is_not_taken_as_results() -> None:
    cut = report(b'{"score": 1}')[: -len(f"\n@@{NONCE} end\n") - 3]
    _, _, raw, problem = split_report(cut, NONCE, 1024)
    assert raw is None and problem is not None and "cut off" in problem


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
        (("disk", False, 137, None, "missing"), "failed", "more than 100 MB to disk"),
        (("timeout", False, 137, None, "missing"), "timeout", "within 10 s"),
        ((None, False, 137, None, "missing"), "failed", "exit code 137"),  # a kill that was not ours
        ((None, True, 137, None, "missing"), "oom", "out of memory (limit 256 MB)"),
        ((None, False, 0, None, "missing"), "failed", "did not write /autograder/results/results.json"),
        ((None, False, 0, b"Running tests...\n{}", None), "failed", "printed into it"),
        ((None, False, 0, b"[1, 2]", None), "failed", "not a JSON object"),
        ((None, True, 0, b'{"score": 1}', None), "graded", "ran out of memory"),
        ((None, False, 3, b'{"score": 1}', None), "graded", "exited with code 3"),
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


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_the_printf_format_prints_the_job_tar_back_byte_for_byte(shell: str) -> None:
    tricky = bytes(range(256)) * 2 + b"\x00" * 700 + b"7\x007\x00\x0012%%d %s \\c\\0\\n\n\\"
    files = {"submission/a.py": tricky, "submission/notes.txt": b"100% done\n", "submission_metadata.json": b"{}"}
    data = job_tar(files, prefix="autograder/")
    for sample in (data, tricky, b"\x01" + b"0" * 3, b"\x00"):
        out = subprocess.run([shell, "-c", 'printf "$F"'], env={"F": printf_format(sample)},
                             capture_output=True, check=True).stdout
        assert out == sample
    assert len(printf_format(data)) < 3 * len(data)  # tar padding: two characters a byte


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
@pytest.mark.parametrize("nested", [False, True])
def test_the_unpack_script_writes_every_file_back_byte_for_byte(shell: str, nested: bool, tmp_path: Path) -> None:
    """Flat submissions are written by the shell's printf alone (no process); a submission
    with folders goes through one tar. Quotes, a leading dash and odd bytes survive both."""
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)  # as every assignment image has it
    files = {"submission/it's -v.py": b"-v x\n'quoted' %s \\n" + bytes(range(256)),
             "submission/empty.txt": b"", "submission_metadata.json": b'{"id": 1}'}
    if nested:
        files["submission/pkg/mod.py"] = b"print('nested')\n"
    script = unpack_script(files, root=str(root))
    assert ("tar -x" in script) is nested
    subprocess.run([shell, "-c", 'eval "$F"'], env={"F": script}, check=True)
    for path, data in files.items():
        assert (root / path).read_bytes() == data, path


def test_a_failed_write_fails_the_whole_unpack(tmp_path: Path) -> None:
    (tmp_path / "submission" / "a.py").mkdir(parents=True)  # the first write fails, the last would not
    script = unpack_script({"submission/a.py": b"a", "submission/b.py": b"b"}, root=str(tmp_path))
    assert subprocess.run(["/bin/sh", "-c", 'eval "$F"'], env={"F": script}, capture_output=True).returncode != 0
