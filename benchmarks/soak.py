"""Soak: the whole distributed pipeline at a steady rate for a while, with random faults.

Starts the fault suite's pipeline (tests/faults/harness.py: bridge, scheduling worker,
beat, two region workers, the CAS service, a private Redis and Postgres, the machine's
Mosquitto and Docker), publishes distinct payloads with QoS 1 at ``--rate`` per second for
``--duration`` seconds, and every ``--fault-every`` seconds injects one fault picked at
random from ``--faults`` (each ends after ``--outage`` seconds). Then it waits for every
submission to settle and prints published / stored / quarantined / graded / lost /
duplicated counts, how long the backlog took to drain, and the memory (RSS, with child
processes) of each long-running process after warm-up and at the end.

    .venv/bin/python benchmarks/soak.py                      # 10 minutes, 2/s, a fault a minute
    .venv/bin/python benchmarks/soak.py --duration 120 --rate 3 --fault-every 30

Needs root for the Docker fault (it restarts the local dockerd the way scripts/test.sh starts it).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.faults.harness import (  # noqa: E402
    Figures,
    Pipeline,
    Publisher,
    docker_up,
    job_containers,
    make_burst,
    wait_until,
)
from tests.integration.private_services import PrivatePostgres  # noqa: E402

FAULTS = ("bridge", "worker", "redis", "postgres", "beat", "cas", "docker")
LONG_RUNNING = ("bridge", "scheduler", "us-west", "us-east", "beat1", "cas")


def rss_mb(pipeline: Pipeline) -> dict[str, float]:
    """Resident memory of each long-running process and its children (prefork pool)."""
    out: dict[str, float] = {}
    for name in LONG_RUNNING:
        proc = pipeline.procs.get(name)
        if proc is None or proc.popen is None or proc.popen.poll() is not None:
            continue
        try:
            root = psutil.Process(proc.popen.pid)
            total = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
        except psutil.Error:
            continue
        out[name] = round(total / 2**20, 1)
    return out


def restart_dockerd() -> None:
    pid = int(subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()[0])
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 60, "dockerd to exit")
    with Path("/var/log/dockerd.log").open("ab") as log:
        subprocess.Popen(["dockerd", "--iptables=false", "--bridge=none"], stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    wait_until(docker_up, 90, "dockerd to come back")


def inject(pipeline: Pipeline, fault: str, outage: float) -> None:
    """One fault: take the part down, wait ``outage`` seconds, bring it back."""
    down: dict[str, Any] = {
        "bridge": lambda: pipeline.kill("bridge"),
        "worker": lambda: pipeline.kill(random.choice(["us-west", "us-east"])),
        "redis": pipeline.redis.stop,
        "postgres": pipeline.postgres.stop,
        "beat": lambda: pipeline.kill("beat1"),
        "cas": lambda: pipeline.kill("cas"),
    }
    if fault == "docker":
        restart_dockerd()
        return
    down[fault]()
    time.sleep(outage)
    if fault == "redis":
        pipeline.redis.start()
    elif fault == "postgres":
        pipeline.postgres.start()
    else:
        for name in LONG_RUNNING:
            proc = pipeline.procs.get(name)
            if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
                pipeline.start_one(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of publishing (default 600)")
    parser.add_argument("--rate", type=float, default=2.0, help="payloads per second (default 2)")
    parser.add_argument("--graded-fraction", type=float, default=0.5,
                        help="share of payloads graded in Docker; the rest hit a broken autograder (default 0.5)")
    parser.add_argument("--fault-every", type=float, default=60.0, help="seconds between faults (default 60)")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds each fault lasts (default 5)")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated subset of {','.join(FAULTS)}")
    parser.add_argument("--settle", type=float, default=600.0, help="seconds allowed to drain at the end")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shared-dir", type=Path,
                        default=Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared")))
    args = parser.parse_args()
    random.seed(args.seed)
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    workdir = Path(tempfile.mkdtemp(prefix="gg-soak-"))
    postgres = PrivatePostgres()
    postgres.init()
    postgres.start()
    pipeline = Pipeline(workdir, postgres, cas=True)
    n = max(1, int(args.duration * args.rate))
    burst = make_burst(args.shared_dir, workdir, n, int(n * args.graded_fraction), first_id=5_000_000)
    injected: list[tuple[float, str]] = []
    try:
        pipeline.prepare()
        pipeline.start()
        publisher = Publisher(pipeline.topic, list(burst.payloads.items()), threads=2, rate=args.rate).start()
        time.sleep(min(30.0, args.duration / 4))
        rss_start = rss_mb(pipeline)
        t0 = publisher.started
        next_fault = time.monotonic() + args.fault_every
        while time.monotonic() - t0 < args.duration:
            if faults and time.monotonic() >= next_fault:
                fault = random.choice(faults)
                print(f"[{time.monotonic() - t0:6.0f}s] fault: {fault}", flush=True)
                inject(pipeline, fault, args.outage)
                injected.append((round(time.monotonic() - t0), fault))
                next_fault = time.monotonic() + args.fault_every
            time.sleep(1)
        publisher.join(timeout=args.settle)
        rss_end_publishing = rss_mb(pipeline)
        settle_s = pipeline.wait_settled(len(publisher.published), args.settle)
        figures = Figures("soak", drain_s=round(settle_s, 1),
                          extra={"faults": injected, "duration_s": args.duration, "rate": args.rate})
        try:
            pipeline.verify(figures, publisher.published, burst)
            verdict = "OK"
        except AssertionError as exc:
            verdict = f"FAILED: {exc}"
        report(figures, len(burst.graded), rss_start, rss_end_publishing, verdict)
    finally:
        pipeline.stop()
        pipeline.drop()
        postgres.cleanup()
        if docker_up():
            for cid in job_containers(pipeline.prefix):
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def report(f: Figures, graded_expected: int, start: dict[str, float], end: dict[str, float], verdict: str) -> None:
    print(f"\nfaults injected ({len(f.extra['faults'])}): {f.extra['faults']}")
    print(f"published   {f.published}")
    print(f"stored      {f.stored}")
    print(f"quarantined {f.quarantined}")
    print(f"graded      {f.graded_in_docker} (of {graded_expected} sent to the real autograder; the rest "
          "end in `error` from the broken one)")
    print(f"terminal    {f.terminal}")
    print(f"lost        {f.lost}")
    print(f"duplicated  {f.duplicated}")
    print(f"conflicting {f.conflicting}")
    print(f"containers left {f.containers_left}")
    print(f"drain after publishing ended: {f.drain_s} s")
    print("memory (RSS MiB, with children)   after warm-up   end of publishing   growth")
    for name in LONG_RUNNING:
        if name in start and name in end:
            print(f"  {name:<12} {start[name]:>16.1f} {end[name]:>19.1f} {end[name] - start[name]:>+8.1f}")
        elif name in end:
            print(f"  {name:<12} {'(restarted)':>16} {end[name]:>19.1f}")
    print(f"verdict: {verdict}")


if __name__ == "__main__":
    main()
