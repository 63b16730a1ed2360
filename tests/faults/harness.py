"""A whole distributed pipeline for fault tests and the soak benchmark.

Bridge, scheduling worker, beat, one Celery worker per region and optionally the CAS
service, each a real subprocess on a private Redis and a database in a private Postgres
cluster (so the tests may stop them without touching the machine's shared services), the
machine's Mosquitto on a topic prefix of their own, and the machine's Docker daemon.

A burst is ``n`` distinct payloads (distinct Gradescope submission ids), published with
QoS 1 from several threads. ``graded`` of them belong to a real autograder (the shared
hello-python fixture, graded in Docker); the rest belong to an assignment whose
``setup.sh`` fails, which ``grade`` resolves to ``error`` with the build's reason without
starting a container. Both kinds travel the same way up to the executor: bridge, commit,
``schedule`` (CAS or policy, Decision row), region queue, ``grade`` (claim, Result row,
terminal status). Docker grading costs about 0.4 s of this machine's two cores per job,
so the number of containers per case is what bounds a case's time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from greengrader.db import Database
from greengrader.demo.examples import build_payload
from greengrader.models import Quarantine, Result, StatusEvent, Submission
from greengrader.models.status import TERMINAL
from tests.integration.bridge_helpers import bridge_argv, bridge_env
from tests.integration.private_services import PrivatePostgres, PrivateRedis, free_port, wait_port

LABEL_JOB = "greengrader.job"
REGIONS = {
    "us-west": 'zone = "US-CAL-CISO"\nlat = 32.88\nlon = -117.23\ncapacity = 4\nuntainted_nodes = 2\n',
    "us-east": 'zone = "US-MIDA-PJM"\nlat = 39.95\nlon = -75.17\ncapacity = 4\nuntainted_nodes = 2\n',
}
GRADED_ASSIGNMENT, BROKEN_ASSIGNMENT = 61001, 61002
TERMINAL_VALUES = sorted(s.value for s in TERMINAL)


def py(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def celery(*args: str) -> list[str]:
    return py("celery", "-A", "greengrader", *args)


def docker_up() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def job_containers(worker_substring: str = "") -> list[str]:
    """Ids of job containers (``docker ps -a --filter label=greengrader.job``) whose worker
    label contains ``worker_substring`` (a pipeline's prefix: other suites' jobs are not ours)."""
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={LABEL_JOB}", "--format",
         '{{.ID}} {{.Label "greengrader.worker"}}'],
        capture_output=True, text=True, timeout=60,
    )
    rows = [line.split(" ", 1) for line in out.stdout.splitlines() if line.strip()]
    return [row[0] for row in rows if worker_substring in (row[1] if len(row) > 1 else "")]


# --- payloads ---------------------------------------------------------------------------------


@dataclass
class Burst:
    """Distinct payloads keyed by Gradescope submission id; ``graded`` ids run in Docker."""

    payloads: dict[int, bytes]
    graded: set[int]


def make_burst(shared: Path, workdir: Path, n: int, graded: int, first_id: int) -> Burst:
    fixture = shared / "fixtures" / "gradescope" / "hello-python"
    broken = workdir / "broken-source"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "setup.sh").write_text("#!/bin/sh\necho 'this autograder is broken' >&2\nexit 1\n")
    (broken / "run_autograder").write_text("#!/bin/sh\nexit 1\n")
    every = max(1, n // max(1, graded))
    payloads: dict[int, bytes] = {}
    graded_ids: set[int] = set()
    for i in range(n):
        gid = first_id + i
        real = len(graded_ids) < graded and i % every == 0
        source = fixture / "source" if real else broken
        meta = gradescope_metadata(gid, GRADED_ASSIGNMENT if real else BROKEN_ASSIGNMENT)
        payloads[gid] = build_payload(source, fixture / "submissions" / "correct", meta, {"score": 10.0, "tests": []})
        if real:
            graded_ids.add(gid)
    return Burst(payloads, graded_ids)


def gradescope_metadata(gid: int, assignment: int) -> dict[str, Any]:
    return {
        "id": gid, "created_at": "2026-12-10T23:59:00.000000-08:00",
        "assignment": {"id": assignment, "course_id": 4343, "title": f"Fault {assignment}", "total_points": "10.0",
                       "due_date": None, "late_due_date": None, "release_date": None,
                       "group_submission": False, "group_size": None},
        "submission_method": "upload",
        "users": [{"email": f"s{gid}@example.edu", "id": gid, "name": "Student", "sid": f"A{gid:08d}"}],
        "previous_submissions": [],
    }


class Publisher:
    """Publishes payloads with QoS 1 from ``threads`` clients at about ``rate`` per second.

    A payload counts as published once the broker has acknowledged it (PUBACK).
    """

    def __init__(self, topic: str, items: list[tuple[int, bytes]], *, threads: int = 4, rate: float = 40.0) -> None:
        self.topic = topic
        self.items = items
        self.threads = threads
        self.rate = rate
        self.published: list[int] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.started = self.finished = 0.0

    def start(self) -> Publisher:
        self.started = time.monotonic()
        for k in range(self.threads):
            share = self.items[k :: self.threads]
            thread = threading.Thread(target=self._run, args=(share, self.rate / self.threads), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def _run(self, share: list[tuple[int, bytes]], rate: float) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:10]}", protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(50)
        try:
            client.connect("127.0.0.1", 1883)
            client.loop_start()
            t0 = time.monotonic()
            pending = []
            for i, (gid, data) in enumerate(share):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pending.append((gid, client.publish(self.topic, data, qos=1)))
            for gid, info in pending:
                info.wait_for_publish(timeout=120)
                if info.is_published():
                    with self._lock:
                        self.published.append(gid)
        except Exception as exc:  # recorded and asserted on by the caller
            self.errors.append(repr(exc))
        finally:
            client.disconnect()
            client.loop_stop()

    def progress(self) -> float:
        """Fraction of the burst handed to the client so far (by the clock)."""
        if not self.started:
            return 0.0
        return min(1.0, (time.monotonic() - self.started) * self.rate / max(1, len(self.items)))

    def join(self, timeout: float = 180.0) -> None:
        for thread in self._workers:
            thread.join(timeout)
        self.finished = time.monotonic()


# --- health sampling --------------------------------------------------------------------------


@dataclass
class HealthSample:
    at: float
    state: str
    checks: dict[str, str]
    summaries: dict[str, str]


class HealthSampler:
    """Runs ``greengrader health --json`` repeatedly in the background."""

    def __init__(self, env: dict[str, str], interval: float = 1.0) -> None:
        self.env = env
        self.interval = interval
        self.samples: list[HealthSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> HealthSample:
        out = subprocess.run(py("greengrader", "health", "--json"), env=self.env, capture_output=True,
                             text=True, timeout=60)
        report = json.loads(out.stdout)
        checks = {c["name"]: c["state"] for c in report["checks"]}
        summaries = {c["name"]: c["summary"] for c in report["checks"]}
        sample = HealthSample(time.monotonic(), report["state"], checks, summaries)
        self.samples.append(sample)
        return sample

    def start(self) -> HealthSampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)

    def saw(self, check: str, states: tuple[str, ...] = ("WARNING", "CRITICAL")) -> list[HealthSample]:
        return [s for s in self.samples if s.checks.get(check) in states]

    def wait_for(self, check: str, timeout: float, states: tuple[str, ...] = ("WARNING", "CRITICAL")) -> HealthSample:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = self.saw(check, states)
            if hits:
                return hits[0]
            time.sleep(0.3)
        seen = [(round(s.at, 1), s.checks.get(check), s.summaries.get(check)) for s in self.samples[-5:]]
        raise AssertionError(f"health never reported {check} as {states} within {timeout:.0f}s; last: {seen}")


# --- the pipeline -----------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    popen: Any = None
    log: Path | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Figures:
    """What a run measured (printed by the tests, collected into docs/reliability.md)."""

    case: str
    published: int = 0
    stored: int = 0
    quarantined: int = 0
    lost: int = 0
    duplicated: int = 0
    graded_in_docker: int = 0
    terminal: int = 0
    conflicting: int = 0
    containers_left: int = 0
    recover_s: float | None = None
    drain_s: float | None = None
    health: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> None:
        line = json.dumps(self.__dict__, default=str)
        print("FIGURES", line)
        target = os.environ.get("GREENGRADER_FAULTS_FIGURES")
        if target:
            with open(target, "a") as fh:
                fh.write(line + "\n")


class Pipeline:
    """Starts, kills and restarts the pipeline's processes; checks the invariants."""

    def __init__(self, workdir: Path, postgres: PrivatePostgres, *, cas: bool = False,
                 concurrency: int = 2, extra_env: dict[str, str] | None = None,
                 proc_env: dict[str, dict[str, str]] | None = None) -> None:
        self.workdir = workdir
        self.postgres = postgres
        self.redis = PrivateRedis(workdir / "redis")
        self.prefix = f"f{uuid.uuid4().hex[:10]}"
        self.db_name = f"gg_fault_{uuid.uuid4().hex[:10]}"
        self.concurrency = concurrency
        self.cas_port = free_port() if cas else None
        self.extra_env = extra_env or {}
        self.proc_env = proc_env or {}
        self.procs: dict[str, Proc] = {}
        self.db: Database | None = None

    # --- setup --------------------------------------------------------------------------

    @property
    def db_url(self) -> str:
        return self.postgres.url.rsplit("/", 1)[0] + "/" + self.db_name

    @property
    def topic(self) -> str:
        return f"{self.prefix}/submissions/cs-fault"

    def env(self) -> dict[str, str]:
        home = self.workdir / "home"
        regions = self.workdir / "regions.toml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GREENGRADER_")}
        env.update(bridge_env(self.prefix, self.db_url))
        env.update({
            "GREENGRADER_HOME": str(home),
            "GREENGRADER_BROKER_URL": self.redis.url,
            "GREENGRADER_REGIONS_FILE": str(regions),
            "GREENGRADER_DEFAULT_REGION": "us-west",
            "GREENGRADER_POLICY": "round-robin",
            "GREENGRADER_MAX_DELAY_S": "0",
            "GREENGRADER_SWEEP_INTERVAL_S": "2",
            "GREENGRADER_RECEIVED_GRACE_S": "10",
            "GREENGRADER_GRADE_TIMEOUT_S": "20",
            "GREENGRADER_STUCK_MARGIN_S": "5",
            "GREENGRADER_MAX_ATTEMPTS": "5",
            "GREENGRADER_WORKER_HEARTBEAT_S": "5",
            "GREENGRADER_HEALTH_HEARTBEAT_MAX_AGE_S": "12",
            "GREENGRADER_HEALTH_TIMEOUT_S": "3",
            "GREENGRADER_HEALTH_MESSAGE_AGE_WARN_S": "5",
            "GREENGRADER_HEALTH_BACKLOG_WARN": "100000",
            "GREENGRADER_HEALTH_BACKLOG_CRIT": "200000",
            "GREENGRADER_SANDBOX": os.environ.get("FAULTS_SANDBOX", "auto"),
            "GREENGRADER_SHARED_DIR": os.environ.get("GREENGRADER_SHARED_DIR", ""),
        })
        if self.cas_port is not None:
            env["GREENGRADER_CAS_URL"] = f"http://127.0.0.1:{self.cas_port}"
            env["GREENGRADER_CAS_TIMEOUT_S"] = "2"
        env.update(self.extra_env)
        return {k: v for k, v in env.items() if v != ""}

    def prepare(self) -> None:
        (self.workdir / "home").mkdir(parents=True, exist_ok=True)
        (self.workdir / "regions.toml").write_text(
            "".join(f"[regions.{name}]\n{body}\n" for name, body in REGIONS.items())
        )
        self.redis.start()
        admin = sa.create_engine(self.postgres.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        self.db = Database(self.db_url)
        self.db.upgrade()
        self._define()

    def _define(self) -> None:
        home = self.workdir / "home"
        self.procs["bridge"] = Proc("bridge", bridge_argv())
        self.procs["scheduler"] = Proc("scheduler", celery(
            "worker", "-Q", "scheduling", "-n", f"sched-{self.prefix}@%h", "--concurrency", "2",
            "--without-mingle", "--without-gossip", "-l", "INFO"))
        for region in REGIONS:
            self.procs[region] = Proc(region, celery(
                "worker", "-Q", f"region-{region}", "-n", f"{region}-{self.prefix}@%h",
                "--concurrency", str(self.concurrency), "--without-mingle", "--without-gossip", "-l", "INFO"))
        for k in (1, 2):
            self.procs[f"beat{k}"] = Proc(f"beat{k}", celery(
                "beat", "-s", str(home / f"beat{k}-schedule"), "--pidfile", str(home / f"beat{k}.pid"), "-l", "INFO"))
        if self.cas_port is not None:
            self.procs["cas"] = Proc("cas", py("greengrader", "cas", "serve", "--port", str(self.cas_port)))
        for name, env in self.proc_env.items():
            self.procs[name].env = env

    def start(self, *names: str) -> None:
        for name in names or ("bridge", "scheduler", *REGIONS, "beat1", *(["cas"] if self.cas_port else [])):
            self.start_one(name)
        self.wait_ready(*(names or ("bridge", *REGIONS)))

    def start_one(self, name: str) -> Proc:
        proc = self.procs[name]
        proc.log = self.workdir / f"{name}-{proc.starts}.log"
        proc.popen = subprocess.Popen(
            proc.argv, env={**self.env(), **proc.env}, stdout=proc.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        proc.starts += 1
        if name == "cas" and self.cas_port is not None:
            wait_port(self.cas_port, timeout=60)
        return proc

    def wait_ready(self, *names: str, timeout: float = 90.0) -> None:
        markers = {"bridge": "connected to MQTT", "scheduler": "ready.", "us-west": "ready.", "us-east": "ready."}
        for name in names:
            marker = markers.get(name)
            if marker is None:
                continue
            proc = self.procs[name]
            wait_until(lambda p=proc, m=marker: p.log is not None and m in p.log.read_text(errors="replace"),
                       timeout, f"{name} to become ready", proc.log)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.popen is not None and proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, sig)
            proc.popen.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.kill(name, signal.SIGTERM)
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.kill(name, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.redis.stop()
        if self.db is not None:
            self.db.dispose()

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            admin = sa.create_engine(self.postgres.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            admin.dispose()

    def health(self, interval: float = 1.0) -> HealthSampler:
        return HealthSampler(self.env(), interval)

    def grading_now(self, region: str = "", timeout: float = 60.0) -> None:
        """Block until a Docker job container of this pipeline (of ``region``'s worker) exists."""
        who = f"{region}-{self.prefix}" if region else self.prefix
        wait_until(lambda: bool(job_containers(who)), timeout, f"a grading container of {who}")

    # --- observations -------------------------------------------------------------------

    def query(self, sql: str) -> list[Any]:
        assert self.db is not None
        with self.db.engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())

    def try_query(self, sql: str) -> list[Any] | None:
        try:
            return self.query(sql)
        except sa.exc.SQLAlchemyError:
            return None

    def stored_count(self) -> int:
        rows = self.try_query("SELECT count(*) FROM submission")
        return int(rows[0][0]) if rows else -1

    def open_count(self) -> int:
        terminal = ",".join(f"'{s}'" for s in TERMINAL_VALUES)
        rows = self.try_query(f"SELECT count(*) FROM submission WHERE status NOT IN ({terminal})")
        return int(rows[0][0]) if rows else -1

    def settled(self, published: int) -> bool:
        rows = self.try_query("SELECT (SELECT count(*) FROM submission) + (SELECT count(*) FROM quarantine)")
        return bool(rows) and int(rows[0][0]) >= published and self.open_count() == 0

    def wait_settled(self, published: int, timeout: float) -> float:
        t0 = time.monotonic()
        if not wait_until(lambda: self.settled(published), timeout, "", fail=False):
            rows = self.try_query("SELECT status, left(coalesce(status_reason, ''), 70), count(*) FROM submission "
                                  f"WHERE status NOT IN ({','.join(repr(s) for s in TERMINAL_VALUES)}) "
                                  "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 8")
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for all {published} payloads stored and "
                                 f"terminal (stored {self.stored_count()}, open {self.open_count()}): {rows}")
        return time.monotonic() - t0

    # --- the invariants -----------------------------------------------------------------

    def verify(self, figures: Figures, published: list[int], burst: Burst) -> Figures:
        """Assert the case's promises; fill in ``figures`` (recorded even when one fails)."""
        assert self.db is not None
        with self.db.session() as session:
            subs = session.execute(sa.select(Submission.gradescope_id, Submission.status, Submission.status_reason,
                                             Submission.id)).all()
            quarantined = session.execute(sa.select(Quarantine.reason)).all()
            results = session.execute(sa.select(Result.submission_id, Result.outcome, Result.score)).all()
            terminal_events = session.execute(
                sa.select(StatusEvent.submission_id, sa.func.count())
                .where(StatusEvent.to_status.in_(TERMINAL_VALUES)).group_by(StatusEvent.submission_id)
            ).all()
        stored_ids = [int(r[0]) for r in subs]
        per_result: dict[int, int] = {}
        for sid, *_ in results:
            per_result[sid] = per_result.get(sid, 0) + 1
        figures.published = len(published)
        figures.stored = len(stored_ids)
        figures.quarantined = len(quarantined)
        # Every payload of a burst is valid: one quarantined would be lost to grading too.
        figures.lost = len(set(published) - set(stored_ids))
        figures.duplicated = len(stored_ids) - len(set(stored_ids))
        figures.terminal = sum(1 for r in subs if r[1] in TERMINAL_VALUES)
        figures.graded_in_docker = sum(1 for _, outcome, score in results if outcome == "graded" and score == 10.0)
        figures.conflicting = sum(1 for n in per_result.values() if n > 1) + sum(
            1 for _, n in terminal_events if n > 1)
        wait_until(lambda: not job_containers(self.prefix), 45, "job containers to be removed", None, fail=False)
        figures.containers_left = len(job_containers(self.prefix))
        figures.record()
        assert figures.lost == 0, f"lost {figures.lost}"
        assert figures.duplicated == 0, f"duplicated {figures.duplicated}"
        assert all(reason for (reason,) in quarantined)
        assert set(stored_ids) <= set(burst.payloads)
        assert figures.terminal == figures.stored, [r for r in subs if r[1] not in TERMINAL_VALUES][:5]
        assert figures.conflicting == 0
        by_gid = {int(r[0]): r for r in subs}
        for gid in burst.payloads:
            if gid not in by_gid:
                continue
            status, reason = by_gid[gid][1], by_gid[gid][2] or ""
            if gid in burst.graded:
                assert status == "graded", (gid, status, reason)
            else:
                assert status == "error" and "setup" in reason, (gid, status, reason)
        assert figures.graded_in_docker == len(burst.graded & set(stored_ids))
        assert figures.containers_left == 0, job_containers(self.prefix)
        return figures


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None,
               *, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    if not fail:
        return False
    tail = "" if log is None or not log.exists() else "\n" + log.read_text(errors="replace")[-3000:]
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


@contextlib.contextmanager
def running_pipeline(workdir: Path, postgres: PrivatePostgres, **kwargs: Any) -> Iterator[Pipeline]:
    pipeline = Pipeline(workdir, postgres, **kwargs)
    try:
        pipeline.prepare()
        pipeline.start()
        yield pipeline
    finally:
        pipeline.stop()
        pipeline.drop()
