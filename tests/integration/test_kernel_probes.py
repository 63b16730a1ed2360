"""Kernel-surface probes from student code, under runc and under gVisor.

Under both sandboxes the dangerous calls fail (raw sockets, mount, keyctl, bpf,
perf_event_open, /proc/sysrq-trigger, kexec, modules, reboot, setns) and the honest grade
still comes out right. Under gVisor the student also sees gVisor's kernel, not the host's:
its release, no host paths of the overlay, no container id, no host block devices; what
gVisor allows (unshare, io_uring, mknod) runs against the Sentry, not the host kernel.
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from greengrader.grading.executors.base import ExecutionResult, Job, Limits
from greengrader.grading.executors.docker import DockerExecutor
from greengrader.grading.images import ImageBuilder
from tests.integration.sandboxes import SANDBOXES, sandboxed_executor

pytestmark = pytest.mark.docker

SOURCE = {
    "setup.sh": b"#!/bin/sh\nset -e\nmkdir -p /autograder/results\n",
    "run_autograder": (
        b"#!/bin/sh\n"
        b"out=$(python3 /autograder/submission/probe.py)\n"
        b"python3 -c 'import json, sys; json.dump({\"score\": 10, \"output\": sys.argv[1]}, "
        b"open(\"/autograder/results/results.json\", \"w\"))' \"$out\"\n"
    ),
}
LIMITS = Limits(timeout_s=20, memory_mb=256, pids=64, disk_mb=64, stdout_bytes=64 * 1024, results_bytes=64 * 1024)
MUST_FAIL = ("raw_socket", "packet_socket", "mount", "keyctl", "add_key", "bpf", "perf_event_open",
             "kexec_load", "init_module", "reboot", "setns")

PROBE = r'''
import ctypes, errno, json, os, socket, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
def sc(name, nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    e = ctypes.get_errno()
    out[name] = "ok" if r >= 0 else errno.errorcode.get(e, str(e))
    return r
out["release"] = os.uname().release
def read(p):
    try:
        with open(p) as f: return f.read()
    except OSError as exc: return f"<{type(exc).__name__}>"
out["mounts"] = read("/proc/self/mountinfo")
out["cgroup"] = read("/proc/self/cgroup")
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["cmdline1"] = read("/proc/1/cmdline").replace("\0", " ")
out["net"] = sorted(os.listdir("/sys/class/net"))
try:
    out["sys_block"] = sorted(os.listdir("/sys/block"))
except OSError as exc:
    out["sys_block"] = type(exc).__name__
out["cpuinfo_lines"] = len(read("/proc/cpuinfo").splitlines())
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); out["raw_socket"] = "ok"
except OSError as exc: out["raw_socket"] = errno.errorcode.get(exc.errno, str(exc.errno))
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW); out["packet_socket"] = "ok"
except OSError as exc: out["packet_socket"] = errno.errorcode.get(exc.errno, str(exc.errno))
os.makedirs("/tmp/m", exist_ok=True)
r = libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None); out["mount"] = "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]
pid = os.fork()
if pid == 0:
    r = libc.unshare(0x10000000 | 0x00020000)  # CLONE_NEWUSER | CLONE_NEWNS
    os._exit(0 if r == 0 else ctypes.get_errno())
_, st = os.waitpid(pid, 0); code = os.waitstatus_to_exitcode(st)
out["unshare"] = "ok" if code == 0 else errno.errorcode.get(code, str(code))
import signal
if sc("ptrace_pid1", 101, 16, 1, 0, 0) >= 0:  # PTRACE_ATTACH: let PID 1 go again
    import time; time.sleep(0.2); libc.syscall(101, 17, 1, 0, 0); os.kill(1, signal.SIGCONT)
child = subprocess.Popen(["sleep", "5"])
other = subprocess.Popen(["setsid", "sleep", "5"])
if sc("ptrace_sibling", 101, 16, other.pid, 0, 0) >= 0:
    import time; time.sleep(0.2); libc.syscall(101, 17, other.pid, 0, 0)
child.kill(); other.kill()
sc("keyctl", 250, 1, 0, 0, 0)  # KEYCTL_JOIN_SESSION_KEYRING
sc("add_key", 248, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"k"), ctypes.c_char_p(b"v"), 1, -3)
sc("bpf", 321, 0, 0, 0)
attr = (ctypes.c_char * 128)()
sc("perf_event_open", 298, ctypes.cast(attr, ctypes.c_void_p), 0, -1, -1, 0)
params = (ctypes.c_char * 120)()
sc("io_uring_setup", 425, 4, ctypes.cast(params, ctypes.c_void_p))
try:
    with open("/proc/sysrq-trigger", "w") as f: f.write("h")
    out["sysrq"] = "written"
except OSError as exc: out["sysrq"] = errno.errorcode.get(exc.errno, type(exc).__name__)
sc("kexec_load", 246, 0, 0, 0, 0)
sc("init_module", 175, 0, 0, ctypes.c_char_p(b""))
sc("reboot", 169, 0xfee1dead, 672274793, 0x4321FEDC, 0)
sc("setns", 308, 0, 0)
sc("mknod_dev", 133, ctypes.c_char_p(b"/tmp/sda"), 0o60600, (8 << 8) | 0)
try:
    os.close(os.open("/tmp/sda", os.O_RDONLY)); out["open_dev"] = "ok"
except OSError as exc: out["open_dev"] = errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps(out))
'''


@pytest.fixture(scope="module", params=SANDBOXES)
def executor(
    request: pytest.FixtureRequest, docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerExecutor]:
    with sandboxed_executor(request.param, docker_client, tmp_path_factory.mktemp("home")) as executor:
        yield executor


@pytest.fixture(scope="module")
def image(executor: DockerExecutor, docker_client: Any) -> str:
    return ImageBuilder(executor.settings, client=docker_client).ensure(SOURCE, "kernel-probe").tag


def run(executor: DockerExecutor, image: str, probe: str, limits: Limits = LIMITS) -> ExecutionResult:
    files = {"submission/probe.py": probe.encode(), "submission_metadata.json": b"{}"}
    result = executor.run(Job(f"probe-{uuid.uuid4().hex[:8]}", image, files, limits))
    executor.drain()
    return result


@pytest.fixture(scope="module")
def probed(executor: DockerExecutor, image: str) -> dict[str, Any]:
    result = run(executor, image, PROBE)
    assert result.outcome == "graded", result.message
    assert result.results is not None and result.results["score"] == 10  # the grade still comes out right
    seen: dict[str, Any] = json.loads(result.results["output"])
    seen["sandbox"] = result.sandbox
    return seen


def test_dangerous_kernel_calls_fail(probed: dict[str, Any]) -> None:
    failed = {name: probed[name] for name in MUST_FAIL}
    assert "ok" not in failed.values(), failed
    assert probed["sysrq"] != "written"


def test_no_network_devices_and_only_the_jobs_processes(probed: dict[str, Any]) -> None:
    assert probed["net"] == ["lo"]
    assert len(probed["pids"]) <= 8 and 1 in probed["pids"]  # its own pid namespace
    assert probed["cmdline1"].startswith("/bin/sh -c")  # PID 1 is the job's own wrapper


def test_gvisor_shows_its_own_kernel_and_nothing_of_the_host(probed: dict[str, Any]) -> None:
    if probed["sandbox"] != "gvisor":
        # runc shares the host kernel: the same release, the overlay's host paths
        assert probed["release"] == platform.release()
        return
    assert probed["release"] != platform.release()
    assert "/var/lib/docker" not in probed["mounts"] and "lowerdir" not in probed["mounts"]
    assert "docker" not in probed["cgroup"]
    assert probed["sys_block"] == []  # no host disks
    # What gVisor permits is served by its own kernel: a device node opens nothing
    assert probed["mknod_dev"] != "ok" or probed["open_dev"] != "ok"


STOP_PID1 = r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print("attached" if libc.syscall(101, 16, 1, 0, 0) == 0 else "refused")  # PTRACE_ATTACH to PID 1, never detached
'''


def test_ptrace_of_pid_1_is_refused_or_only_hangs_the_job_until_the_wall_clock(
    executor: DockerExecutor, image: str
) -> None:
    started = time.monotonic()
    limits = Limits(**{**LIMITS.__dict__, "timeout_s": 5})
    result = run(executor, image, STOP_PID1, limits)
    assert time.monotonic() - started < limits.timeout_s + 8
    if executor.sandbox().sandbox == "gvisor":
        assert result.outcome == "graded" and "refused" in (result.results or {}).get("output", "")
    else:  # runc lets root trace its own container's init; the job is still stopped on time
        assert result.outcome in ("graded", "timeout"), result.message
    assert os.path.exists("/proc/1")
