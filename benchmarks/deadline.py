"""Deadline night: a burst of submissions through the real pipeline, against bare Docker.

Starts the fault suite's pipeline (tests/faults/harness.py: bridge, scheduling worker,
beat, two region workers with ``--concurrency`` slots each, a private Redis and Postgres,
the machine's Mosquitto and Docker), publishes ``--submissions`` distinct payloads of a
fast real autograder (the shared hello-python fixture) spread over ``--window`` seconds,
waits until every one is terminal and reports:

- grading throughput (results per second between the first start and the last finish),
  side by side with back-to-back bare ``docker run --rm --network none`` of the same image
  running the same autograder on the same submission with the same total concurrency,
  measured in the same run (target: the pipeline reaches at least 90 % of bare Docker);
- queue wait (``queued`` -> ``running``) p50 / p95 / max, and how that compares with the
  stuck threshold the old sweep used (grade limit + margin);
- exactly once: stored, graded, duplicated, lost, re-sent or recovered by the sweep.

    .venv/bin/python benchmarks/deadline.py                  # 2 000 over 10 minutes
    .venv/bin/python benchmarks/deadline.py --scale 0.1      # 200 over 60 s
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from greengrader.grading.executors.sandbox import sandbox_in_use  # noqa: E402
from greengrader.grading.images import ImageBuilder  # noqa: E402
from greengrader.settings import load_settings  # noqa: E402
from tests.faults.harness import Figures, Pipeline, Publisher, make_burst  # noqa: E402
from tests.integration.private_services import PrivatePostgres  # noqa: E402

ENV = {
    "GREENGRADER_POLICY": "carbon-optimal",
    "GREENGRADER_GRADE_TIMEOUT_S": "20",
    "GREENGRADER_STUCK_MARGIN_S": "5",
    "GREENGRADER_SWEEP_INTERVAL_S": "5",
}


def fixture_source(shared: Path) -> tuple[dict[str, bytes], Path]:
    root = shared / "fixtures" / "gradescope" / "hello-python"
    source = {p.relative_to(root / "source").as_posix(): p.read_bytes()
              for p in (root / "source").rglob("*") if p.is_file()}
    return source, root / "submissions" / "correct"


def bare_docker(image: str, submission: Path, jobs: int, concurrency: int, runtime: str | None) -> float:
    """Jobs per second of ``docker run --rm --network none IMAGE run_autograder``, back to back,
    under the same runtime the pipeline grades with (gVisor where the daemon has it)."""
    cpu = MachineCpu()
    rate = _bare_runs(image, submission, jobs, concurrency, runtime)
    print(f"bare docker run  {rate:.2f} jobs/s; CPU per job: {cpu.per_job(jobs)}", flush=True)
    return rate


def _bare_runs(image: str, submission: Path, jobs: int, concurrency: int, runtime: str | None) -> float:
    left = list(range(jobs))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                if not left:
                    return
                left.pop()
            subprocess.run(
                ["docker", "run", "--rm", "--network", "none", "--memory", "768m",
                 *(["--runtime", runtime] if runtime else []),
                 "-v", f"{submission}:/autograder/submission:ro", image, "/autograder/run_autograder"],
                capture_output=True, check=True, timeout=120,
            )

    t0 = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return jobs / (time.monotonic() - t0)


# Where the daemon accounts its containers' CPU (cgroup v1 and v2 with the cgroupfs driver).
CONTAINER_CGROUPS = ("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage", "/sys/fs/cgroup/docker/cpu.stat")


class MachineCpu:
    """CPU seconds the whole machine, the grading containers, the Docker daemon and the
    pipeline's own processes spent between two samples.

    On 2 cores the slots saturate the CPU, so throughput is cores / CPU per job, and the
    split says where the pipeline's extra CPU goes. Whatever is not in a named part ("rest")
    is mostly the OCI runtime's short-lived processes (``runsc create/start/delete``, shims).
    """

    def __init__(self, pipeline: Callable[[], Iterable[tuple[str, int]]] = tuple) -> None:
        self.pipeline = pipeline
        self.start = self.sample()

    def sample(self) -> dict[str, float]:
        times = psutil.cpu_times()
        daemon = [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("dockerd", "containerd")]
        parts: dict[str, float] = {}
        for name, pid in self.pipeline():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                parts[name] = sum(map(_cpu, [root, *root.children(recursive=True)]))
        return {"machine": times.user + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0)
                + getattr(times, "nice", 0), "containers": _containers_cpu(),
                "docker daemon": sum(map(_cpu, daemon)), "pipeline": sum(parts.values()),
                **{f"  {name}": v for name, v in parts.items()}}

    def per_job(self, jobs: int) -> str:
        end = self.sample()
        used = {k: end[k] - self.start.get(k, 0.0) for k in end}
        used["rest"] = used["machine"] - used["containers"] - used["docker daemon"] - used["pipeline"]
        used = {k: v for k, v in used.items() if not k.startswith("  ")} | {
            f"({k.strip()})": v for k, v in used.items() if k.startswith("  ")}
        return ", ".join(f"{k} {1000 * v / max(jobs, 1):.0f}" for k, v in used.items()) + " ms"


def _containers_cpu() -> float:
    for path in CONTAINER_CGROUPS:
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text()
            if path.endswith("cpu.stat"):
                return int(text.split("usage_usec ")[1].split()[0]) / 1e6
            return int(text) / 1e9
    return 0.0


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system + times.children_user + times.children_system)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else (values[0] if values else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--window", type=float, default=600.0, help="seconds the burst is spread over")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --submissions and --window")
    parser.add_argument("--concurrency", type=int, default=1, help="grading slots per region worker (2 regions)")
    parser.add_argument("--baseline-jobs", type=int, default=60, help="bare docker runs for the baseline")
    parser.add_argument("--settle", type=float, default=7200.0)
    parser.add_argument("--shared-dir", type=Path,
                        default=Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared")))
    args = parser.parse_args()
    n = max(1, int(args.submissions * args.scale))
    window = max(1.0, args.window * args.scale)
    slots = 2 * args.concurrency

    source, submission = fixture_source(args.shared_dir)
    image = ImageBuilder(load_settings()).ensure(source, "61001").tag
    runtime = sandbox_in_use(load_settings()).runtime
    # The machine's speed drifts: the baseline runs before and after the pipeline.
    before = bare_docker(image, submission, max(1, args.baseline_jobs // 2), slots, runtime)
    workdir = Path(tempfile.mkdtemp(prefix="gg-deadline-"))
    postgres = PrivatePostgres()
    postgres.init()
    postgres.start()
    pipeline = Pipeline(workdir, postgres, concurrency=args.concurrency, extra_env=ENV)
    burst = make_burst(args.shared_dir, workdir, n, n, first_id=7_000_000)
    try:
        pipeline.prepare()
        pipeline.start()
        cpu = MachineCpu(lambda: [(name, p.popen.pid) for name, p in pipeline.procs.items() if p.popen is not None])
        publisher = Publisher(pipeline.topic, list(burst.payloads.items()), threads=2, rate=n / window).start()
        publisher.join(timeout=window * 3 + 60)
        settle_s = pipeline.wait_settled(len(publisher.published), args.settle)
        figures = Figures("deadline benchmark", drain_s=round(settle_s, 1))
        pipeline.verify(figures, publisher.published, burst)
        throughput = report(pipeline, figures, n, window, slots)
        print(f"CPU per job      {cpu.per_job(n)} (the pipeline: bridge, Celery workers and beat; rest: Postgres, Redis, Mosquitto, the OCI runtime)")
    finally:
        pipeline.stop()
        pipeline.drop()
        postgres.cleanup()
    after = bare_docker(image, submission, max(1, args.baseline_jobs - args.baseline_jobs // 2), slots, runtime)
    base = (before + after) / 2
    print(f"bare docker run  {base:.2f} jobs/s ({before:.2f} before the pipeline, {after:.2f} after; "
          f"{args.baseline_jobs} runs, concurrency {slots}, same image, runtime {runtime or 'runc'})")
    print(f"pipeline / bare  {throughput / base:.0%}  (target >= 90 %)")


def report(p: Pipeline, f: Figures, n: int, window: float, slots: int) -> float:
    """Print the pipeline's figures; returns its grading throughput (results/s)."""
    (first, last, graded), = p.query("SELECT min(started_at), max(finished_at), count(*) FROM result "
                                     "WHERE outcome = 'graded'")
    waits = [float(r[0].total_seconds()) for r in p.query(
        "SELECT r.at - q.at FROM status_event q JOIN status_event r ON r.submission_id = q.submission_id "
        "AND r.to_status = 'running' AND r.id > q.id WHERE q.to_status = 'queued' "
        "AND NOT EXISTS (SELECT 1 FROM status_event m WHERE m.submission_id = q.submission_id "
        "AND m.id > q.id AND m.id < r.id)")]
    resent = p.query("SELECT count(*) FROM status_event WHERE reason LIKE 'recovered:%' "
                     "OR reason LIKE 'its message was lost%'")[0][0]
    throughput = graded / max((last - first).total_seconds(), 1e-9)
    threshold = int(ENV["GREENGRADER_GRADE_TIMEOUT_S"]) + int(ENV["GREENGRADER_STUCK_MARGIN_S"])
    print(f"\nburst            {n} submissions over {window:.0f} s, {slots} grading slots (2 regions)")
    print(f"stored / graded  {f.stored} / {f.graded_in_docker}  (lost {f.lost}, duplicated {f.duplicated}, "
          f"two results or terminal moves {f.conflicting}, re-sent or recovered {resent})")
    print(f"pipeline         {throughput:.2f} results/s")
    print(f"queue wait       p50 {percentile(waits, 50):.1f} s, p95 {percentile(waits, 95):.1f} s, "
          f"max {max(waits, default=0):.1f} s  ({max(waits, default=0) / threshold:.1f}x the old stuck threshold "
          f"of {threshold} s)")
    print(f"drained          {f.drain_s} s after the last publish")
    breakdown(p, slots)
    return throughput


def breakdown(p: Pipeline, slots: int) -> None:
    """Where a grading slot's time goes, job after job: waiting for the next message,
    claiming it up to the container's start, the container (create -> exit), and storing."""
    rows = p.query(
        "SELECT r.region, run.at, r.started_at, r.finished_at, done.at FROM result r "
        "JOIN status_event run ON run.id = (SELECT max(id) FROM status_event WHERE submission_id = r.submission_id "
        "AND to_status = 'running') "
        "JOIN status_event done ON done.submission_id = r.submission_id AND done.to_status = 'graded' "
        "WHERE r.outcome = 'graded' AND r.started_at IS NOT NULL ORDER BY run.at")
    parts: dict[str, list[float]] = {"next message": [], "claim -> container": [], "container": [],
                                     "container -> stored": []}
    last_done: dict[str, object] = {}
    for region, running, started, finished, done in rows:
        if slots == 2 and region in last_done:  # one slot per region: the gap since its last job
            parts["next message"].append((running - last_done[region]).total_seconds())  # type: ignore[operator]
        parts["claim -> container"].append((started - running).total_seconds())
        parts["container"].append((finished - started).total_seconds())
        parts["container -> stored"].append((done - finished).total_seconds())
        last_done[region] = done
    print("per job on a slot (median / mean s):  " + ",  ".join(
        f"{name} {statistics.median(v):.3f} / {statistics.fmean(v):.3f}" for name, v in parts.items() if v))
    again = p.query(
        "SELECT e.reason, count(*) FROM status_event e WHERE e.to_status = 'queued' AND e.reason IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM status_event r WHERE r.submission_id = e.submission_id AND r.to_status = 'running' "
        "AND r.id < e.id) GROUP BY 1 ORDER BY 2 DESC LIMIT 3")
    print("taken again after a claim:  " + ("; ".join(f"{n} x {reason[:400]}" for reason, n in again) or "none"))
    lost = p.query("SELECT submission_id FROM status_event WHERE reason LIKE 'its message was lost%' LIMIT 1")
    if lost:
        history = p.query(f"SELECT at, from_status, to_status, reason FROM status_event WHERE submission_id = "
                          f"{lost[0][0]} ORDER BY id")
        print("history of a job re-sent as lost:  " + " | ".join(
            f"{at:%H:%M:%S.%f} {a}->{b} {(r or '')[:90]}" for at, a, b, r in history))
    per_region = p.query("SELECT region, count(*), min(started_at), max(finished_at) FROM result "
                         "WHERE outcome = 'graded' GROUP BY 1 ORDER BY 1")
    print("graded per region:  " + ",  ".join(
        f"{region} {n} ({(last - first).total_seconds():.0f} s busy span)" for region, n, first, last in per_region))


if __name__ == "__main__":
    main()
