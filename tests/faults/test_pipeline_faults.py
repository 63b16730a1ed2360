"""Whole-pipeline faults under a deadline-night burst, one fault per case.

Each case publishes ``PAYLOADS`` distinct payloads with QoS 1 from four threads into the
full distributed pipeline (see harness.py), injects its fault mid-burst while sampling
``greengrader health --json``, ends the fault, and then asserts: every published payload
stored exactly once, every submission terminal within ``SETTLE_BOUND_S``, no submission with
two results or two terminal transitions, no job container left, and health reporting the
fault while it lasted. The figures of each case are printed (``FIGURES {...}``) and, when
``GREENGRADER_FAULTS_FIGURES`` names a file, appended to it (docs/reliability.md).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from greengrader.demo.examples import build_payload
from tests.faults.conftest import start_dockerd
from tests.faults.harness import (
    GRADED_ASSIGNMENT,
    Burst,
    Figures,
    HealthSampler,
    Pipeline,
    Publisher,
    docker_up,
    gradescope_metadata,
    job_containers,
    make_burst,
    wait_until,
)

pytestmark = pytest.mark.docker

PAYLOADS = int(os.environ.get("GREENGRADER_FAULTS_PAYLOADS", "500"))
GRADED = int(os.environ.get("GREENGRADER_FAULTS_GRADED", "30"))  # containers per ingestion-side case
GRADED_GRADING_SIDE = int(os.environ.get("GREENGRADER_FAULTS_GRADED_GRADING", "60"))
SETTLE_BOUND_S = float(os.environ.get("GREENGRADER_FAULTS_BOUND_S", "180"))
RATE = 25.0  # payloads per second: a 500-payload burst lasts about 20 s
DEAD_BROKER = "redis://127.0.0.1:1/0"

Fault = Callable[[Pipeline, Publisher, HealthSampler], tuple[float, float]]


def run_case(pipeline: Pipeline, case: str, burst: Burst, fault: Fault, check: str,
             **extra: Any) -> tuple[Figures, list[int]]:
    health = pipeline.health().start()
    publisher = Publisher(pipeline.topic, list(burst.payloads.items()), rate=RATE).start()
    try:
        fault_at, back_at = fault(pipeline, publisher, health)
        publisher.join()
        assert not publisher.errors, publisher.errors
        assert len(publisher.published) == len(burst.payloads)
    finally:
        health.stop()
    hits = health.saw(check)
    assert hits, f"health never reported {check} during the fault"
    pipeline.wait_settled(len(publisher.published), SETTLE_BOUND_S)
    done = time.monotonic()
    figures = Figures(
        case, recover_s=round(done - back_at, 1), drain_s=round(done - publisher.finished, 1),
        health=[f"{hits[0].checks[check]}: {hits[0].summaries[check]}"],
        extra={"fault_s": round(back_at - fault_at, 1), "health_samples": len(health.samples), **extra},
    )
    pipeline.verify(figures, publisher.published, burst)
    return figures, publisher.published


def burst(pipeline: Pipeline, shared_dir: Path, graded: int = GRADED) -> Burst:
    return make_burst(shared_dir, pipeline.workdir, PAYLOADS, graded, first_id=3_000_000 + os.getpid() % 1000 * 1000)


def stored_at_least(pipeline: Pipeline, fraction: float) -> None:
    wait_until(lambda: pipeline.stored_count() >= fraction * PAYLOADS, 60, f"{fraction:.0%} of the burst stored")


def test_bridge_sigkilled_mid_burst_and_restarted(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory()

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        stored_at_least(p, 0.25)
        at = time.monotonic()
        p.kill("bridge")
        assert pub.progress() < 0.8, "not mid-burst"
        health.wait_for("bridge", 30)
        p.start_one("bridge")
        p.wait_ready("bridge")
        return at, time.monotonic()

    run_case(p, "bridge SIGKILL mid-burst", burst(p, shared_dir), fault, "bridge")


def test_region_worker_sigkilled_while_grading_and_restarted(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory()

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        p.grading_now(region="us-west")
        at = time.monotonic()
        p.kill("us-west")
        health.wait_for("workers", 40)
        p.start_one("us-west")
        p.wait_ready("us-west")
        return at, time.monotonic()

    run_case(p, "region worker SIGKILL while grading", burst(p, shared_dir, GRADED_GRADING_SIDE), fault, "workers")


def test_redis_restarted_during_dispatch(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory()

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        stored_at_least(p, 0.3)
        at = time.monotonic()
        p.redis.stop()  # no persistence: every queued schedule and grade message is gone
        health.wait_for("broker", 20)
        p.redis.start()
        return at, time.monotonic()

    run_case(p, "Redis restarted during dispatch (queues lost)", burst(p, shared_dir), fault, "broker")


def test_postgres_restarted_during_ingestion(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory()

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        stored_at_least(p, 0.3)
        at = time.monotonic()
        p.postgres.stop()
        assert pub.progress() < 0.8, "not during ingestion"
        health.wait_for("database", 20)
        p.postgres.start()
        return at, time.monotonic()

    run_case(p, "Postgres restarted during ingestion", burst(p, shared_dir), fault, "database")


def sweep_only(grace: str = "5") -> dict[str, Any]:
    """The bridge's fast path to ``schedule`` is cut (its broker is unreachable), so every
    submission moves only when a beat-driven sweep re-sends it: beat is load-bearing."""
    return {"proc_env": {"bridge": {"GREENGRADER_BROKER_URL": DEAD_BROKER}},
            "extra_env": {"GREENGRADER_RECEIVED_GRACE_S": grace}}


def test_beat_sigkilled_and_restarted(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory(**sweep_only())

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        stored_at_least(p, 0.3)
        at = time.monotonic()
        p.kill("beat1")
        health.wait_for("beat", 30)
        p.start_one("beat1")
        return at, time.monotonic()

    run_case(p, "beat SIGKILL (sweep is the only dispatch path)", burst(p, shared_dir), fault, "beat")


def test_two_beats_at_once(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory(**sweep_only())
    p.start_one("beat2")

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        at = time.monotonic()
        health.wait_for("beat", 30)
        stored_at_least(p, 0.9)
        return at, time.monotonic()

    figures, _ = run_case(p, "two beats at once (sweep is the only dispatch path)", burst(p, shared_dir), fault, "beat")
    resent, most = p.query("SELECT count(*) FILTER (WHERE schedule_tries > 0), max(schedule_tries) FROM submission")[0]
    assert resent, "the sweeps never re-sent anything: the case did not exercise them"
    # Re-sends back off (grace, then twice that, ...): two sweeps claiming one row in the same
    # pass would show as a second try within seconds of the first.
    assert most <= 2, most
    print("sweep re-sends:", resent, "for", figures.stored, "submissions")


def test_cas_down_for_part_of_the_burst(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory(cas=True)

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        wait_until(lambda: (p.try_query("SELECT count(*) FROM decision") or [[0]])[0][0] >= 50, 60,
                   "decisions from the CAS")
        at = time.monotonic()
        p.kill("cas")
        health.wait_for("cas", 20)
        time.sleep(max(0.0, 4 - (time.monotonic() - at)))
        p.start_one("cas")
        return at, time.monotonic()

    run_case(p, "CAS service down for part of the burst", burst(p, shared_dir), fault, "cas")
    rows = p.query("SELECT submission_id, count(*), bool_or(fallback IS NOT NULL), bool_or(fallback IS NULL) "
                   "FROM decision GROUP BY 1")
    assert all(n == 1 for _, n, _, _ in rows), "a submission was decided twice"
    fell_back = sum(1 for _, _, fb, _ in rows if fb)
    assert 0 < fell_back < len(rows), (fell_back, len(rows))
    print("decisions by the fallback policy while CAS was down:", fell_back, "of", len(rows))


def dockerd_pid() -> int:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def test_docker_daemon_restarted_while_a_job_runs(pipeline_factory: Any, shared_dir: Path) -> None:
    p = pipeline_factory()

    def fault(p: Pipeline, pub: Publisher, health: HealthSampler) -> tuple[float, float]:
        p.grading_now()
        at = time.monotonic()
        pid = dockerd_pid()
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 60, "dockerd to exit")
        health.wait_for("docker", 20)
        start_dockerd()
        assert docker_up()
        return at, time.monotonic()

    run_case(p, "Docker daemon restarted while a job runs", burst(p, shared_dir, GRADED_GRADING_SIDE), fault, "docker")


# --- deadline night: queue waits far past every timeout, and a region going dark -----------

DEADLINE_ENV = {
    "GREENGRADER_POLICY": "carbon-optimal",
    "GREENGRADER_GRADE_TIMEOUT_S": "5",
    "GREENGRADER_STUCK_MARGIN_S": "2",
    "GREENGRADER_IMAGE_BUILD_TIMEOUT_S": "10",
    "GREENGRADER_RECEIVED_GRACE_S": "3",
}
RECOVERY_REASONS = ("recovered:%", "its message was lost%", "gave up%")


def recoveries(p: Pipeline) -> int:
    where = " OR ".join(f"reason LIKE '{r}'" for r in RECOVERY_REASONS)
    return int(p.query(f"SELECT count(*) FROM status_event WHERE {where}")[0][0])


def longest_queue_wait_s(p: Pipeline) -> float:
    rows = p.query(
        "SELECT max(r.at - q.at) FROM status_event q JOIN status_event r ON r.submission_id = q.submission_id "
        "AND r.to_status = 'running' WHERE q.to_status = 'queued'")
    return float(rows[0][0].total_seconds()) if rows and rows[0][0] is not None else 0.0


def minute_carbon(directory: Path, dirty_until: datetime) -> None:
    """One-minute carbon data: us-west dirty (400) until ``dirty_until`` and clean (50)
    after, us-east a steady 300, so the policy holds us-west's jobs for the clean minutes."""
    directory.mkdir(parents=True, exist_ok=True)
    header = ["Datetime (UTC)", "Country", "Zone Name", "Zone Id",
              "Carbon Intensity gCO₂eq/kWh (direct)", "Carbon Intensity gCO₂eq/kWh (LCA)"]
    start = dirty_until.replace(second=0, microsecond=0) - timedelta(hours=6)
    for zone, value in (("US-CAL-CISO", lambda t: 400 if t < dirty_until else 50), ("US-MIDA-PJM", lambda t: 300)):
        with (directory / f"{zone}_minutes.csv").open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(header)
            for i in range(12 * 60):
                t = start + timedelta(minutes=i)
                out.writerow([f"{t:%Y-%m-%d %H:%M:%S}", "US", zone, zone, value(t), value(t)])


def held_env(workdir: Path) -> dict[str, str]:
    """Spatio-temporal placement over one-minute data whose next clean minute for us-west
    is 25 to 85 s away, with the slack to wait for it."""
    now = datetime.now(UTC)
    dirty_until = now.replace(second=0, microsecond=0) + timedelta(minutes=1 if now.second < 35 else 2)
    minute_carbon(workdir / "carbon", dirty_until)
    return {**DEADLINE_ENV, "GREENGRADER_POLICY": "spatio-temporal", "GREENGRADER_MAX_DELAY_S": "150",
            "GREENGRADER_CARBON_SOURCE": "dataset", "GREENGRADER_CARBON_DATA_DIR": str(workdir / "carbon"),
            "GREENGRADER_CARBON_STEP_S": "60", "GREENGRADER_FORECAST": "oracle"}


def test_deadline_burst_waits_many_times_every_timeout_and_is_graded_once(
    pipeline_factory: Any, shared_dir: Path, tmp_path: Path
) -> None:
    """One grading slot per region and a burst of real autograder runs, most of it held for
    a greener minute by spatio-temporal placement and then released at once: jobs wait in
    their queue several times the old stuck threshold (limit + margin); none starts before
    its decided time, none is re-sent, counted as an attempt or errored, each is graded once."""
    p = pipeline_factory(concurrency=1, extra_env=held_env(tmp_path))
    graded = int(os.environ.get("GREENGRADER_FAULTS_DEADLINE_GRADED", "60"))
    b = make_burst(shared_dir, p.workdir, graded + 10, graded, first_id=5_000_000 + os.getpid() % 1000 * 1000)
    publisher = Publisher(p.topic, list(b.payloads.items()), rate=RATE).start()
    publisher.join()
    assert len(publisher.published) == len(b.payloads), publisher.errors
    p.wait_settled(len(publisher.published), SETTLE_BOUND_S + 240)
    waited = longest_queue_wait_s(p)
    threshold = 5 + 2  # the old sweep's "stuck": grade limit + margin (the lost-message grace is 3 s)
    held = int(p.query("SELECT count(*) FROM decision WHERE start_at > created_at + interval '10 seconds'")[0][0])
    early = p.query(
        "SELECT r.submission_id, r.started_at, d.start_at FROM result r JOIN decision d ON d.submission_id = "
        "r.submission_id AND d.id = (SELECT max(id) FROM decision WHERE submission_id = r.submission_id) "
        "WHERE r.started_at < d.start_at - interval '1 second'")
    figures = Figures("deadline burst, held for a greener minute, queue wait many times every timeout",
                      extra={"longest_queue_wait_s": round(waited, 1), "stuck_threshold_s": threshold,
                             "held": held, "recoveries": recoveries(p)})
    p.verify(figures, publisher.published, b)
    assert held >= graded // 2, f"only {held} jobs were held for a greener minute"
    assert not early, f"graded before their decided start: {early[:3]}"
    assert waited > 3 * threshold, f"the queue never waited long enough ({waited:.0f} s) to test anything"
    assert figures.extra["recoveries"] == 0, p.query("SELECT reason FROM status_event WHERE reason LIKE 'recovered:%' "
                                                     "OR reason LIKE 'its message%' LIMIT 5")
    attempts = p.query("SELECT max(attempts) FROM submission WHERE status = 'graded'")[0][0]
    assert attempts == 1, attempts


def test_region_going_dark_with_a_full_queue_moves_its_work(
    pipeline_factory: Any, shared_dir: Path, tmp_path: Path
) -> None:
    """Every job is held for us-west's greener minute (spatio-temporal placement, no capacity
    limit) and released there at once; its only worker is SIGKILLed with the queue full. Its
    queued jobs move to us-east, its running one is recovered, all are graded once; when
    us-west comes back its old messages do nothing."""
    env = {**held_env(tmp_path), "GREENGRADER_CAPACITY_AWARE": "false", "GREENGRADER_REGION_DEAD_AFTER_S": "5"}
    p = pipeline_factory(concurrency=1, extra_env=env)
    graded = int(os.environ.get("GREENGRADER_FAULTS_OUTAGE_GRADED", "20"))
    b = make_burst(shared_dir, p.workdir, graded, graded, first_id=6_000_000 + os.getpid() % 1000 * 1000)
    health = p.health().start()
    publisher = Publisher(p.topic, list(b.payloads.items()), rate=RATE).start()
    try:
        publisher.join()
        wait_until(lambda: (p.try_query("SELECT count(*) FROM submission WHERE status = 'queued' "
                                        "AND region = 'us-west'") or [[0]])[0][0] >= 10, 150, "10 jobs queued in us-west")
        p.grading_now(region="us-west")
        killed_at = time.monotonic()
        p.kill("us-west")
        health.wait_for("workers", 60)
        p.wait_settled(len(publisher.published), SETTLE_BOUND_S)
        moved_s = time.monotonic() - killed_at
    finally:
        health.stop()
    p.start_one("us-west")  # it comes back and drains its stale messages
    p.wait_ready("us-west")
    time.sleep(8)
    moved = int(p.query("SELECT count(DISTINCT submission_id) FROM status_event WHERE reason LIKE 'moved off us-west%'")[0][0])
    east = int(p.query("SELECT count(*) FROM result WHERE region = 'us-east'")[0][0])
    figures = Figures("region going dark with a full queue", recover_s=round(moved_s, 1),
                      extra={"moved": moved, "graded_in_us_east": east})
    p.verify(figures, publisher.published, b)
    assert moved >= 9, moved
    held = int(p.query("SELECT count(DISTINCT submission_id) FROM decision WHERE region = 'us-west' "
                       "AND start_at > created_at + interval '10 seconds'")[0][0])
    assert held >= graded // 2, f"only {held} jobs were held for us-west before it went dark"
    assert east >= moved
    decided_twice = p.query("SELECT count(*) FROM (SELECT submission_id FROM decision GROUP BY 1 HAVING count(*) > 1) d")
    assert int(decided_twice[0][0]) >= moved  # each moved job got a new decision saying why


def pool_children(pid: int) -> list[int]:
    """The prefork pool processes of a Celery worker (its main process's children)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_a_job_that_kills_its_pool_process_every_time_ends_in_error(
    pipeline_factory: Any, shared_dir: Path
) -> None:
    """A poison job: every time it is taken, the pool process grading it dies (SIGKILL, as
    the kernel's OOM killer would). Celery redelivers it each time (late ack, reject on
    worker lost); after ``max_attempts`` the claim ends it ``error`` instead of looping for
    ever, and the worker keeps serving the next job."""
    attempts = 3
    # A short limit: each killed attempt's container (an infinite loop) ends soon after.
    p = pipeline_factory(concurrency=1, extra_env={
        "GREENGRADER_POLICY": "static", "GREENGRADER_MAX_ATTEMPTS": str(attempts), "GREENGRADER_GRADE_TIMEOUT_S": "6"})
    fixture = shared_dir / "fixtures" / "gradescope" / "hello-python"
    gid = 8_000_000 + os.getpid() % 1000 * 1000
    poison = build_payload(fixture / "source", fixture / "submissions" / "infinite_loop",
                           gradescope_metadata(gid, GRADED_ASSIGNMENT), {"score": 0.0, "tests": []})
    healthy = build_payload(fixture / "source", fixture / "submissions" / "correct",
                            gradescope_metadata(gid + 1, GRADED_ASSIGNMENT), {"score": 10.0, "tests": []})
    worker = p.procs["us-west"].popen.pid
    publisher = Publisher(p.topic, [(gid, poison)], rate=RATE).start()
    publisher.join()
    kills = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        row = p.try_query(f"SELECT status, attempts FROM submission WHERE gradescope_id = {gid}")
        status, tried = row[0] if row else (None, 0)
        if status == "error":
            break
        if status == "running" and tried > kills:
            p.grading_now(region="us-west")  # the container is up: the job is really being graded
            for child in pool_children(worker):
                os.kill(child, signal.SIGKILL)
            kills += 1
        time.sleep(0.1)
    (status, reason, tried), = p.query(
        f"SELECT status, status_reason, attempts FROM submission WHERE gradescope_id = {gid}")
    assert status == "error", (status, reason, kills)
    assert kills == attempts and tried == attempts, (kills, tried)
    assert reason.startswith(f"gave up after {attempts} attempts"), reason
    assert not p.query(f"SELECT 1 FROM result r JOIN submission s ON s.id = r.submission_id "
                       f"WHERE s.gradescope_id = {gid} AND r.outcome = 'graded'")
    # The same worker (never restarted) grades the next submission normally.
    publisher = Publisher(p.topic, [(gid + 1, healthy)], rate=RATE).start()
    publisher.join()
    wait_until(lambda: (p.try_query(f"SELECT status FROM submission WHERE gradescope_id = {gid + 1}")
                        or [[None]])[0][0] == "graded", 120, "the next submission to be graded")
    assert p.procs["us-west"].starts == 1
    # The containers the killed pool processes started do not outlive the worker's cleanup.
    wait_until(lambda: not job_containers(p.prefix), 90, "the killed attempts' containers to be removed")
