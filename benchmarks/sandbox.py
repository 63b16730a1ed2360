"""What gVisor costs: the same jobs under runc and under gVisor (runsc), on this machine's Docker.

Three autograders: *trivial* (writes a results.json), *cpu* (a few seconds of pure Python
arithmetic) and *make* (the c-make example: compiles C with make and runs the tests, a
syscall-heavy job). For each sandbox and autograder:

    wall s    one job at a time: executor.run() from create to removal-scheduled (median)
    runtime s the container's own run, create -> exit, as stored on the Result (median)
    jobs/min  throughput with --parallel jobs at once (one executor each, as worker processes)

Prints a Markdown table and the gVisor/runc ratio per autograder. Usage:
    python benchmarks/sandbox.py [-n 5] [--parallel 2] [--jobs 6] [--cpu-s 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent import futures
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from greengrader.demo.examples import example_payload  # noqa: E402
from greengrader.grading.executors.base import Job, Limits  # noqa: E402
from greengrader.grading.executors.docker import DockerExecutor  # noqa: E402
from greengrader.grading.images import ImageBuilder  # noqa: E402
from greengrader.grading.service import payload_files  # noqa: E402
from greengrader.settings import load_settings  # noqa: E402

TRIVIAL = {"run_autograder": b"#!/bin/sh\necho '{\"score\": 1}' > /autograder/results/results.json\n"}


def cpu_source(loops: int) -> dict[str, bytes]:
    script = (
        f"import json\nx = 0\nfor i in range({loops}):\n    x = (x * 31 + i) % 1000003\n"
        "json.dump({'score': 1, 'output': str(x)}, open('/autograder/results/results.json', 'w'))\n"
    ).encode()
    return {"run_autograder": b"#!/bin/sh\npython3 /autograder/source/cpu.py\n", "cpu.py": script}


def autograders(settings: object, cpu_s: float) -> dict[str, tuple[dict[str, bytes], dict[str, bytes]]]:
    """name -> (source, job files)."""
    files = {"submission/x": b"", "submission_metadata.json": b"{}"}
    make = payload_files(example_payload("c-make", "correct", 990001), settings)  # type: ignore[arg-type]
    loops = int(cpu_s * 12_000_000)  # ~12 M iterations/s of this loop on the reference machine
    return {"trivial": (TRIVIAL, files), "cpu": (cpu_source(loops), files), "make": (make.source, make.files)}


def executor(sandbox: str, client: docker.DockerClient, home: Path) -> DockerExecutor:
    settings = load_settings(home=home, sandbox=sandbox)
    ex = DockerExecutor(settings, client=client, worker=f"bench-{sandbox}-{uuid.uuid4().hex[:6]}")
    assert ex.sandbox().sandbox == sandbox, f"{sandbox} is not available on this Docker daemon"
    return ex


def one(ex: DockerExecutor, image: str, files: dict[str, bytes], limits: Limits) -> tuple[float, float]:
    t0 = time.monotonic()
    result = ex.run(Job(f"bench-{uuid.uuid4().hex[:8]}", image, files, limits))
    wall = time.monotonic() - t0
    if result.outcome != "graded":
        raise SystemExit(f"benchmark job failed under {result.sandbox}: {result.message}")
    return wall, result.runtime_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5, help="sequential jobs per sandbox and autograder")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=6, help="jobs in the throughput run")
    parser.add_argument("--cpu-s", type=float, default=3.0)
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    home = Path(tempfile.mkdtemp(prefix="gg-bench-"))
    settings = load_settings(home=home)
    limits = Limits(timeout_s=300)
    rows: dict[tuple[str, str], tuple[float, float, float]] = {}
    for name, (source, files) in autograders(settings, args.cpu_s).items():
        image = ImageBuilder(settings, client=client).ensure(source, f"bench-{name}").tag
        for sandbox in ("runc", "gvisor"):
            executors = [executor(sandbox, client, home) for _ in range(max(1, args.parallel))]
            one(executors[0], image, files, limits)  # warm-up: page cache, first runsc start
            timings = [one(executors[0], image, files, limits) for _ in range(args.n)]
            t0 = time.monotonic()
            with futures.ThreadPoolExecutor(len(executors)) as pool:
                jobs = [pool.submit(one, executors[i % len(executors)], image, files, limits) for i in range(args.jobs)]
                for job in jobs:
                    job.result()
            per_min = args.jobs / (time.monotonic() - t0) * 60
            for ex in executors:
                ex.drain()
            rows[(name, sandbox)] = (statistics.median(w for w, _ in timings),
                                     statistics.median(r for _, r in timings), per_min)
            print(f"{name:8} {sandbox:6} wall {rows[(name, sandbox)][0]:.2f} s  runtime "
                  f"{rows[(name, sandbox)][1]:.2f} s  {per_min:.1f} jobs/min", file=sys.stderr)
    print(f"\n{args.n} sequential jobs (median) and {args.jobs} jobs {args.parallel} at a time, per sandbox\n")
    print("| autograder | runc wall s | gVisor wall s | ratio | runc runtime s | gVisor runtime s | "
          "runc jobs/min | gVisor jobs/min |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("trivial", "cpu", "make"):
        r, g = rows[(name, "runc")], rows[(name, "gvisor")]
        print(f"| {name} | {r[0]:.2f} | {g[0]:.2f} | {g[0] / r[0]:.2f}x | {r[1]:.2f} | {g[1]:.2f} | "
              f"{r[2]:.1f} | {g[2]:.1f} |")


if __name__ == "__main__":
    main()
