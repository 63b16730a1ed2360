"""Hostile student code under the Docker executor: each attack is contained with a clear
outcome, the container is gone afterwards and the host is unaffected — under both
sandboxes, runc (the host kernel) and gVisor (runsc, a user-space kernel)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from greengrader.errors import ExecutorError
from greengrader.grading.executors.base import ExecutionResult, Job, Limits
from greengrader.grading.executors.docker import (
    LABEL_DEADLINE,
    LABEL_JOB,
    LABEL_WORKER,
    DockerExecutor,
)
from greengrader.grading.images import ImageBuilder
from tests.integration.sandboxes import SANDBOXES, sandboxed_executor

pytestmark = pytest.mark.docker

# The autograder hands control to the student's attack.sh (as a root autograder that runs
# student code does), then writes a results.json unless the attack prevents it.
SOURCE = {
    "setup.sh": b"#!/bin/sh\nset -e\nmkdir -p /autograder/results\n",
    "run_autograder": (
        b"#!/bin/bash\n"
        b"bash /autograder/submission/attack.sh > >(cat) 2>&1\n"
        b"[ -e /autograder/results/results.json ] || echo '{\"score\": 1, \"tests\": []}' > /autograder/results/results.json\n"
    ),
}
LIMITS = Limits(timeout_s=4, memory_mb=128, cpus=1.0, pids=64, disk_mb=64, fsize_mb=32,
                nofile=256, stdout_bytes=64 * 1024, results_bytes=64 * 1024)


@pytest.fixture(scope="module", params=SANDBOXES)
def executor(
    request: pytest.FixtureRequest, docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerExecutor]:
    with sandboxed_executor(request.param, docker_client, tmp_path_factory.mktemp("home")) as executor:
        yield executor


@pytest.fixture(scope="module")
def image(executor: DockerExecutor, docker_client: Any) -> str:
    return ImageBuilder(executor.settings, client=docker_client).ensure(SOURCE, "hostile").tag


@pytest.fixture(autouse=True)
def no_leftovers(docker_client: Any, executor: DockerExecutor) -> Iterator[None]:
    yield
    executor.drain()  # removal runs off the critical path
    mine = {"label": [LABEL_JOB, f"{LABEL_WORKER}={executor.worker}"]}
    left = docker_client.containers.list(all=True, filters=mine)
    assert [c.name for c in left] == [], "a grading container was left behind"


def attack(executor: DockerExecutor, image: str, script: str, limits: Limits = LIMITS) -> ExecutionResult:
    files = {"submission/attack.sh": script.encode(), "submission_metadata.json": b"{}"}
    return executor.run(Job(f"hostile-{uuid.uuid4().hex[:8]}", image, files, limits))


def host_can_fork() -> bool:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.waitpid(pid, 0)[1] == 0


def test_fork_bomb_is_capped_by_the_pids_limit_and_killed(executor: DockerExecutor, image: str) -> None:
    started = time.monotonic()
    result = attack(executor, image, "bomb() { bomb | bomb & }; bomb\nsleep 100\n")
    if executor.sandbox().sandbox == "runc":
        assert result.outcome == "timeout"
        assert "did not finish within 4 s" in result.message
    elif result.outcome == "oom":
        # each process costs the sandbox memory: the bomb may reach 128 MB before 64 processes,
        # and the cgroup then kills the whole sandbox
        assert result.details["oom_killed"] is True
        assert "ran out of memory (limit 128 MB)" in result.message, result.message
    else:  # the bomb starves the sandbox's own threads: gVisor stops the whole sandbox
        assert result.outcome == "failed", result.message
        assert "gVisor sandbox stopped" in result.message and "limit 64" in result.message
    assert time.monotonic() - started < LIMITS.timeout_s + 6
    assert host_can_fork()


def test_memory_hog_is_killed_as_out_of_memory(executor: DockerExecutor, image: str) -> None:
    hog = "exec python3 -c 'a = []\nwhile True: a.append(b\"x\" * (1 << 20))'\n"
    result = attack(executor, image, hog)
    assert result.details["oom_killed"] is True
    assert "ran out of memory (limit 128 MB)" in result.message, result.message
    if executor.sandbox().sandbox == "runc":
        # the autograder survived the killed child and still wrote results: graded, with a note
        assert result.outcome == "graded"
        assert result.memory_peak_bytes is not None and result.memory_peak_bytes <= 129 * 2**20
    else:  # gVisor's memory is the sandbox's: the whole sandbox is killed, reported as such
        assert result.outcome == "oom", result.message


def test_disk_filler_is_stopped_at_the_disk_budget(executor: DockerExecutor, image: str) -> None:
    script = "i=0\nwhile true; do dd if=/dev/zero of=/autograder/fill$i bs=1M count=16 2>/dev/null; i=$((i+1)); done\n"
    result = attack(executor, image, script)
    assert result.outcome == "failed"
    assert "wrote more than 64 MB to disk" in result.message


def test_single_huge_file_is_cut_by_the_file_size_limit(executor: DockerExecutor, image: str) -> None:
    script = (
        "dd if=/dev/zero of=/autograder/big bs=1M count=100 2>/dev/null; rc=$?\n"
        "size=$(wc -c < /autograder/big)\n"
        "echo \"{\\\"score\\\": 0, \\\"output\\\": \\\"rc=$rc size=$size\\\"}\" > /autograder/results/results.json\n"
    )
    result = attack(executor, image, script)
    assert result.outcome == "graded"
    assert result.results is not None
    assert result.results["output"] == f"rc=153 size={32 << 20}"  # SIGXFSZ at the fsize limit


PROBE = r"""
cat > /tmp/probe.py <<'PY'
import json, os, socket
attempts = {}
for host, port in [("127.0.0.1", 5432), ("127.0.0.1", 6379), ("127.0.0.1", 1883), ("8.8.8.8", 53), ("10.0.3.1", 80)]:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((host, port))
        attempts[f"{host}:{port}"] = "connected"
    except OSError as exc:
        attempts[f"{host}:{port}"] = type(exc).__name__
try:
    socket.getaddrinfo("pypi.org", 443)
    attempts["dns"] = "resolved"
except OSError as exc:
    attempts["dns"] = type(exc).__name__
attempts["interfaces"] = sorted(os.listdir("/sys/class/net"))
json.dump({"score": 0, "output": json.dumps(attempts)}, open("/autograder/results/results.json", "w"))
PY
python3 /tmp/probe.py
"""


def test_network_exfiltration_to_host_services_is_impossible(executor: DockerExecutor, image: str) -> None:
    for port in (5432, 6379):  # the host services really are listening
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    result = attack(executor, image, PROBE)
    assert result.outcome == "graded"
    attempts = json.loads(result.results["output"])  # type: ignore[index]
    assert attempts.pop("interfaces") == ["lo"]
    assert "connected" not in attempts.values() and "resolved" not in attempts.values()
    assert attempts["127.0.0.1:5432"] == "ConnectionRefusedError"


def test_stdout_flood_is_capped(executor: DockerExecutor, image: str) -> None:
    # 20 MB, 300x the cap (gVisor writes output at ~10 MB/s here: 50 MB outlasts the 4 s limit)
    result = attack(executor, image, "head -c 20000000 /dev/zero | tr '\\0' A\n")
    assert result.outcome == "graded"
    assert result.output_truncated
    assert len(result.stdout.encode()) <= LIMITS.stdout_bytes + 100
    assert "Output was cut to its last 65536 bytes" in result.message


def test_processes_left_running_cannot_write_into_the_report(executor: DockerExecutor, image: str) -> None:
    """A background writer that outlives the autograder (here one printing without end, and
    the autograder's own `> >(cat)`) is stopped before the report, which it would mangle."""
    result = attack(executor, image, "(while :; do echo 'noise {\"score\": 99}'; done) &\nsleep 0.5\n")
    assert (result.outcome, result.results) == ("graded", {"score": 1, "tests": []}), result.message
    assert "noise" in result.stdout
    assert result.runtime_s < LIMITS.timeout_s


def test_a_container_stopped_by_the_daemon_is_an_infrastructure_error(
    executor: DockerExecutor, image: str, docker_client: Any
) -> None:
    """`docker stop` (or the daemon shutting down) sends SIGTERM: the job must not be
    stored as the student's grade, and the wrapper (PID 1) must end at once, not after the
    stop timeout's SIGKILL."""
    job = Job(f"stopped-{uuid.uuid4().hex[:8]}", image,
              {"submission/attack.sh": b"sleep 30\n", "submission_metadata.json": b"{}"},
              replace(LIMITS, timeout_s=60))
    stop_took: list[float] = []

    def stop_when_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = docker_client.containers.list(filters={"label": f"{LABEL_JOB}={job.job_id}", "status": "running"})
            if running:
                time.sleep(1.0)  # the autograder is under way
                t0 = time.monotonic()
                running[0].stop(timeout=20)
                stop_took.append(time.monotonic() - t0)
                return
            time.sleep(0.05)

    stopper = threading.Thread(target=stop_when_running)
    stopper.start()
    with pytest.raises(ExecutorError, match="stopped by the Docker daemon"):
        executor.run(job)
    stopper.join()
    assert stop_took and stop_took[0] < 10, stop_took


def test_sleeper_past_the_timeout_is_killed(executor: DockerExecutor, image: str) -> None:
    started = time.monotonic()
    result = attack(executor, image, "sleep 600\n")
    assert result.outcome == "timeout"
    assert LIMITS.timeout_s - 0.5 <= result.runtime_s <= LIMITS.timeout_s + 3
    assert time.monotonic() - started < LIMITS.timeout_s + 6


WRITES = r"""
out=""
for target in /etc/greengrader-evil /root/evil /usr/bin/evil; do
  echo pwned > $target 2>/dev/null && out="$out $target:written" || out="$out $target:refused"
done
echo evil > /proc/sys/kernel/hostname 2>/dev/null && out="$out proc:written" || out="$out proc:refused"
mount -t tmpfs none /mnt 2>/dev/null && out="$out mount:ok" || out="$out mount:refused"
echo 1 > /proc/sysrq-trigger 2>/dev/null && out="$out sysrq:written" || out="$out sysrq:refused"
[ -e /etc/greengrader-evil-previous ] && out="$out previous:seen" || out="$out previous:absent"
echo x > /etc/greengrader-evil-previous
echo "{\"score\": 0, \"output\": \"$out\"}" > /autograder/results/results.json
"""


def test_writes_outside_autograder_stay_in_the_throwaway_container(executor: DockerExecutor, image: str) -> None:
    first = attack(executor, image, WRITES)
    second = attack(executor, image, WRITES)
    for result in (first, second):
        assert result.outcome == "graded"
        output = result.results["output"]  # type: ignore[index]
        # root may write into its own container layer (Gradescope semantics) ...
        assert "/etc/greengrader-evil:written" in output
        # ... but not into the kernel, mounts or the host
        assert "proc:refused" in output and "mount:refused" in output and "sysrq:refused" in output
        assert "previous:absent" in output  # every job starts from a fresh container
    assert not os.path.exists("/etc/greengrader-evil")


def test_oversized_results_json_is_rejected(executor: DockerExecutor, image: str) -> None:
    script = "python3 -c \"import json; json.dump({'score': 1, 'output': 'x' * 200000}, open('/autograder/results/results.json', 'w'))\"\n"
    result = attack(executor, image, script)
    assert result.outcome == "failed"
    assert "too large" in result.message


def test_results_json_symlink_to_a_secret_is_refused(executor: DockerExecutor, image: str) -> None:
    result = attack(executor, image, "ln -sf /etc/shadow /autograder/results/results.json\n")
    assert result.outcome == "failed"
    assert "not a regular file" in result.message


def test_results_json_with_foreign_owner_and_no_permissions_is_still_read(executor: DockerExecutor, image: str) -> None:
    script = (
        "echo '{\"score\": 3, \"tests\": []}' > /autograder/results/results.json\n"
        "chown 12345:12345 /autograder/results/results.json; chmod 000 /autograder/results/results.json\n"
    )
    result = attack(executor, image, script)
    assert result.outcome == "graded"
    assert result.results == {"score": 3, "tests": []}


def test_process_surviving_the_autograder_dies_with_the_container(executor: DockerExecutor, image: str) -> None:
    script = "setsid nohup sh -c 'sleep 1000' >/dev/null 2>&1 &\nnohup sleep 1000 >/dev/null 2>&1 &\ndisown -a\n"
    started = time.monotonic()
    result = attack(executor, image, script)
    assert result.outcome == "graded"
    assert time.monotonic() - started < 3  # nobody waited for the survivors


def test_strict_mode_has_a_read_only_root_and_no_root_user(executor: DockerExecutor, image: str) -> None:
    script = (
        "out=$(id -u)\n"
        "echo x > /etc/evil 2>/dev/null && out=\"$out etc:written\" || out=\"$out etc:refused\"\n"
        "echo x > /tmp/ok && out=\"$out tmp:written\"\n"
        "echo \"{\\\"score\\\": 0, \\\"output\\\": \\\"$out\\\"}\" > /autograder/results/results.json\n"
    )
    strict = Limits(**{**LIMITS.__dict__, "strict": True})
    result = attack(executor, image, script, strict)
    assert result.outcome == "graded", result.message
    assert result.results["output"] == "65534 etc:refused tmp:written"  # type: ignore[index]


def test_large_submission_is_delivered_with_put_archive(executor: DockerExecutor, image: str) -> None:
    blob = os.urandom(300 * 1024)  # too big for the environment: goes through put_archive
    script = "sha256sum /autograder/submission/blob.bin | cut -c1-64 > /tmp/h\n" \
             "echo \"{\\\"score\\\": 1, \\\"output\\\": \\\"$(cat /tmp/h)\\\"}\" > /autograder/results/results.json\n"
    files = {"submission/attack.sh": script.encode(), "submission/blob.bin": blob, "submission_metadata.json": b"{}"}
    result = executor.run(Job(f"large-{uuid.uuid4().hex[:8]}", image, files, LIMITS))
    assert result.outcome == "graded", result.message
    assert result.results is not None and result.results["output"] == hashlib.sha256(blob).hexdigest()


def test_janitor_removes_leftovers_of_this_worker_only(executor: DockerExecutor, image: str, docker_client: Any) -> None:
    mine = docker_client.containers.create(image, ["true"], labels={LABEL_JOB: "crashed", LABEL_WORKER: executor.worker})
    other = docker_client.containers.create(image, ["true"], labels={LABEL_JOB: "running", LABEL_WORKER: "someone-else"})
    try:
        assert executor.janitor() >= 1
        names = [c.name for c in docker_client.containers.list(all=True, filters={"label": LABEL_JOB})]
        assert mine.name not in names and other.name in names  # another worker's job may still be running
    finally:
        other.remove(force=True)
        with contextlib.suppress(Exception):
            mine.remove(force=True)


def test_periodic_cleanup_removes_exited_and_never_started_containers(
    executor: DockerExecutor, image: str, docker_client: Any
) -> None:
    """What a pool process killed mid-job leaves: a container that exited (nobody read it)
    and one created but never started (killed between create and start)."""
    labels = {LABEL_JOB: "killed-mid-job", LABEL_WORKER: executor.worker}
    exited = docker_client.containers.run(image, ["true"], labels=labels, detach=True, network_mode="none")
    exited.wait(timeout=60)
    unstarted = docker_client.containers.create(image, ["true"], labels=labels, network_mode="none")
    other = docker_client.containers.create(image, ["true"], labels={**labels, LABEL_WORKER: "someone-else"})
    try:
        # Too recent: the job that owns them may still be reading them.
        assert executor.remove_exited(older_than_s=3600, unstarted_after_s=3600) == 0
        assert executor.remove_exited(older_than_s=0, unstarted_after_s=0) == 2
        left = {c.id for c in docker_client.containers.list(all=True, filters={"label": LABEL_JOB})}
        assert exited.id not in left and unstarted.id not in left and other.id in left
    finally:
        for c in (exited, unstarted, other):
            with contextlib.suppress(Exception):
                c.remove(force=True)


def test_periodic_cleanup_kills_containers_running_past_their_deadline(
    executor: DockerExecutor, image: str, docker_client: Any
) -> None:
    """The wall clock of a job whose pool process died (SIGKILL, OOM) while its container
    ran: nobody is left to kill it at the limit, so the cleanup does once the deadline
    label has passed, for this worker's containers and, a minute later, any worker's."""
    now = int(time.time())
    mine = {LABEL_JOB: "orphan", LABEL_WORKER: executor.worker}

    def sleeper(labels: dict[str, str], deadline: int) -> Any:
        return docker_client.containers.run(image, ["sleep", "300"], labels={**labels, LABEL_DEADLINE: str(deadline)},
                                            detach=True, network_mode="none")

    overdue = sleeper(mine, now - 20)
    live = sleeper(mine, now + 300)
    just_overdue = sleeper(mine, now - 5)  # its live job may be killing it right now
    others = {**mine, LABEL_WORKER: "a-worker-killed-for-good"}
    other_overdue, other_recent = sleeper(others, now - 90), sleeper(others, now - 20)
    try:
        assert executor.remove_exited(older_than_s=15, unstarted_after_s=3600) == 2
        left = {c.id for c in docker_client.containers.list(all=True, filters={"label": LABEL_JOB})}
        assert overdue.id not in left and other_overdue.id not in left
        assert {live.id, just_overdue.id, other_recent.id} <= left
    finally:
        for c in (overdue, live, just_overdue, other_overdue, other_recent):
            with contextlib.suppress(Exception):
                c.remove(force=True)


def test_periodic_cleanup_never_removes_a_container_its_job_started_meanwhile(
    executor: DockerExecutor, image: str, docker_client: Any
) -> None:
    """The race a deadline night hit: the cleanup lists a job's container while it is still
    `created`, the job starts it, and the cleanup inspects a running container. It must be
    left alone (removing it made the job fail with 404/409 and run again)."""
    labels = {LABEL_JOB: "starting", LABEL_WORKER: executor.worker}
    container = docker_client.containers.create(image, ["sleep", "30"], labels=labels, network_mode="none")
    inspect = executor.client.api.inspect_container
    started: list[str] = []

    def start_then_inspect(cid: str) -> Any:  # the job's start lands between list and inspect
        if cid == container.id and not started:
            started.append(cid)
            executor.client.api.start(cid)
        return inspect(cid)

    executor.client.api.inspect_container = start_then_inspect  # type: ignore[method-assign]
    try:
        assert executor.remove_exited(older_than_s=0, unstarted_after_s=0) == 0
        container.reload()
        assert container.status == "running"
    finally:
        executor.client.api.inspect_container = inspect  # type: ignore[method-assign]
        with contextlib.suppress(Exception):
            container.remove(force=True)
