"""The worker registry on real Postgres, and a real Celery worker registering itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from greengrader.context import Context
from greengrader.errors import InvalidWorkerFacts
from greengrader.models.infra import Worker
from greengrader.ops.workers import heartbeat, list_workers, register_worker

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")

ORIGINAL_MESSAGE = {
    "ip": "10.0.0.5",
    "name": "grader-7",
    "cpu model name": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
    "clock rate": "2100.000",
    "sockets": "2",
    "cores": "16",
    "cache size": "22528 KB",
    "memory size": "196608 MB",
}


class StepClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _row(ctx: Context, hostname: str) -> Worker | None:
    with ctx.db.session() as session:
        return session.scalar(select(Worker).where(Worker.hostname == hostname))


def test_mqtt_registration_upserts_and_keeps_known_facts(context: Context) -> None:
    clock = StepClock()
    context.clock = clock
    register_worker(context, ORIGINAL_MESSAGE)
    row = _row(context, "grader-7")
    assert row is not None
    assert (row.cores, row.sockets, row.memory_bytes) == (16, 2, 196608 * 2**20)
    assert row.source == "mqtt" and row.region is None

    clock.now += timedelta(minutes=5)
    register_worker(context, {"name": "grader-7", "cores": 32}, region="us-east", source="celery")
    row = _row(context, "grader-7")
    assert row is not None
    assert row.cores == 32
    assert row.cpu_model == ORIGINAL_MESSAGE["cpu model name"]  # a terse message keeps facts
    assert row.region == "us-east" and row.source == "celery"
    assert row.last_heartbeat == clock.now
    with context.db.session() as session:
        assert len(session.scalars(select(Worker)).all()) == 1


def test_heartbeat_moves_only_the_named_worker(context: Context) -> None:
    clock = StepClock()
    context.clock = clock
    register_worker(context, {"name": "a"})
    register_worker(context, {"name": "b"})
    clock.now += timedelta(seconds=30)
    assert heartbeat(context, "a") is True
    assert heartbeat(context, "ghost") is False
    rows = {w.hostname: w.last_heartbeat for w in list_workers(context)}
    assert rows == {"a": clock.now, "b": clock.now - timedelta(seconds=30)}
    assert [w.hostname for w in list_workers(context)] == ["a", "b"]


def test_unknown_region_is_refused(context: Context) -> None:
    with pytest.raises(InvalidWorkerFacts) as info:
        register_worker(context, {"name": "x", "region": "atlantis"})
    assert info.value.reason == "unknown_region"
    assert _row(context, "x") is None


# --- A real worker process ---------------------------------------------------------------

@pytest.fixture
def worker_process(context: Context, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    nodename = f"gg-{uuid.uuid4().hex[:8]}@testhost"
    env = {**os.environ, "GREENGRADER_WORKER_HEARTBEAT_S": "5"}
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [CELERY, "-A", "greengrader", "worker", "-Q", "region-us-west", "--pool", "solo",
         "-n", nodename, "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield nodename, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_for(ctx: Context, hostname: str, proc: subprocess.Popen[bytes], timeout: float) -> Worker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _row(ctx, hostname)
        if row is not None:
            return row
        assert proc.poll() is None, "the worker exited before registering"
        time.sleep(0.25)
    raise AssertionError(f"worker {hostname} did not register within {timeout} s")


def test_celery_worker_registers_with_region_and_heartbeats(
    context: Context, worker_process: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    nodename, proc = worker_process
    row = _wait_for(context, nodename, proc, timeout=60)
    # It announces its region and slots first (before taking a task), its hardware next.
    assert row.region == "us-west" and row.regions == ["us-west"] and row.concurrency == 1
    assert row.source == "celery"
    deadline = time.monotonic() + 30
    while not row.cpu_model and time.monotonic() < deadline:
        time.sleep(0.25)
        row = _row(context, nodename) or row
    assert row.cpu_model and row.cores and row.cores >= 1
    assert row.memory_bytes and row.memory_bytes > 2**28
    first_beat = row.last_heartbeat

    ping = subprocess.run(
        [CELERY, "-A", "greengrader", "inspect", "ping", "-d", nodename, "--timeout", "10"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "pong" in ping.stdout and nodename in ping.stdout

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        later = _row(context, nodename)
        assert later is not None
        if later.last_heartbeat > first_beat:
            break
        time.sleep(0.5)
    else:
        raise AssertionError((tmp_path / "worker.log").read_text()[-3000:])


def test_cli_lists_registered_workers(context: Context) -> None:
    from click.testing import CliRunner

    from greengrader.cli import cli

    register_worker(context, ORIGINAL_MESSAGE)
    result = CliRunner().invoke(cli, ["workers", "list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "grader-7" in result.output and "192.0 GiB" in result.output
