"""Crash and outage behaviour of the bridge, run as a subprocess through the CLI."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import text

from greengrader.bridge.ingest import ingest_bytes
from greengrader.context import Context
from greengrader.db import Database
from greengrader.models import Submission
from tests import payloads
from tests.integration.bridge_helpers import (
    TcpProxy,
    bridge_argv,
    bridge_env,
    count,
    publish,
    wait_for,
)


def start_bridge(processes: Any, env: dict[str, str]) -> Any:
    proc = processes.start(*bridge_argv(), env=env, name="bridge")
    wait_for(lambda: "connected to MQTT" in Path(proc.log_path).read_text() or proc.poll() is not None,
             what="the bridge to connect")
    assert proc.poll() is None, Path(proc.log_path).read_text()
    return proc


def lock_waiters(database: Database) -> int:
    with database.engine.connect() as probe:
        return int(probe.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar() or 0)


def kill(proc: Any) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_sigkill_between_receive_and_ack_redelivers_exactly_once(
    env_settings: Any, database: Database, topic_prefix: str, mqtt_broker: Any, processes: Any,
) -> None:
    env = bridge_env(topic_prefix, database.url)
    bridge = start_bridge(processes, env)
    # Hold a lock so the bridge's insert blocks after it has received the message.
    with database.engine.connect() as locker:
        locker.execute(text("LOCK TABLE submission IN ACCESS EXCLUSIVE MODE"))
        publish(env["GREENGRADER_MQTT_TOPIC"], [payloads.build()])
        wait_for(lambda: lock_waiters(database) >= 1, what="the bridge to block inside its transaction")
        kill(bridge)
        locker.rollback()
    assert count(database) == 0
    start_bridge(processes, env)
    wait_for(lambda: count(database) == 1, what="the redelivered message")
    time.sleep(1.5)  # a second copy would have arrived by now
    assert count(database) == 1


def test_postgres_unreachable_during_a_burst_acks_nothing_and_loses_nothing(
    env_settings: Any, database: Database, topic_prefix: str, mqtt_broker: Any, processes: Any,
) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    proxied_url = database.url.replace(":5432/", f":{proxy.port}/")
    env = bridge_env(topic_prefix, proxied_url)
    bridge = start_bridge(processes, env)
    burst = [payloads.build(payloads.metadata(submission_id=800000 + i)) for i in range(30)]
    try:
        proxy.stop()
        publish(env["GREENGRADER_MQTT_TOPIC"], burst[:15])
        wait_for(lambda: "database unavailable" in Path(bridge.log_path).read_text(),
                 what="the bridge to notice the outage", log=bridge.log_path)
        # Killing the bridge now would lose anything it had acked: nothing must be.
        kill(bridge)
        publish(env["GREENGRADER_MQTT_TOPIC"], burst[15:])  # queued by the broker for the session
        bridge = start_bridge(processes, env)
        time.sleep(1)
        assert count(database) == 0
        proxy.start()
        wait_for(lambda: count(database) == len(burst), timeout=60, what="every message after recovery")
        time.sleep(1)
        assert count(database) == len(burst)
    finally:
        proxy.stop()


def test_celery_broker_unreachable_leaves_submissions_received(
    env_settings: Any, database: Database, fixtures_dir: Path,
) -> None:
    ctx = Context.from_settings(env_settings, app=Celery("down", broker="redis://127.0.0.1:1/0"))
    ctx.db = database
    data = (fixtures_dir / "hello-python" / "payloads" / "correct.zip").read_bytes()
    started = time.monotonic()
    outcome = ingest_bytes(ctx, data, "submissions")
    assert time.monotonic() - started < 15
    assert outcome.status == "received" and outcome.submission_id is not None
    with database.session() as session:
        row = session.get(Submission, outcome.submission_id)
        assert row is not None and row.status == "received" and row.gradescope_score == 10.0

    # The broker comes back: the beat sweep finds the stale `received` row (the outbox) and
    # enqueues `schedule` on the real Redis broker.
    from datetime import timedelta

    import redis as redis_lib

    from greengrader.celery_app import app as real_app
    from greengrader.scheduling.sweep import run_sweep

    later = Context.from_settings(env_settings, app=real_app)
    later.db = database
    later.clock = lambda: row.received_at + timedelta(seconds=env_settings.received_grace_s + 1)
    report = run_sweep(later)
    assert report.rescheduled == [outcome.submission_id]
    queued = redis_lib.Redis.from_url(env_settings.effective_broker_url).lrange("scheduling", 0, -1)
    tasks = [json.loads(m)["headers"] for m in queued]
    assert [(t["task"], t["argsrepr"]) for t in tasks] == [("greengrader.schedule", f"[{outcome.submission_id}]")]


@pytest.mark.parametrize("name", ["correct.zip", "correct_flat_layout.zip"])
def test_cli_ingest_and_export_round_trip(
    env_settings: Any, database: Database, fixtures_dir: Path, tmp_path: Path, name: str,
) -> None:
    import subprocess
    import sys

    path = fixtures_dir / "hello-python" / "payloads" / name
    run = [sys.executable, "-m", "greengrader"]
    out = subprocess.run([*run, "ingest", str(path), str(path)], capture_output=True, text=True, check=True)
    assert "received" in out.stdout and "duplicate" in out.stdout
    assert count(database) == 1
    with database.session() as session:
        sub_id = session.query(Submission.id).scalar()
    subprocess.run([*run, "export", str(sub_id), str(tmp_path / "out")], check=True, capture_output=True)
    exported = list((tmp_path / "out").rglob("solution.py"))
    assert len(exported) == 1 and b"def" in exported[0].read_bytes()
    listing = subprocess.run([*run, "submissions", "--status", "received"], capture_output=True, text=True, check=True)
    assert "900101" in listing.stdout or "900105" in listing.stdout


def test_enqueue_fails_fast_while_the_celery_broker_is_down(env_settings: Any, database: Database) -> None:
    """A dead broker must not stall ingestion: each batch's enqueue gives up at once (the rows
    stay `received` for the sweep) instead of retrying for kombu's connect timeout."""
    from greengrader.bridge.ingest import enqueue_schedule_many

    ctx = Context.from_settings(env_settings, app=Celery("down", broker="redis://127.0.0.1:1/0"))
    ctx.db = database
    started = time.monotonic()
    assert [enqueue_schedule_many(ctx, [1, 2, 3]) for _ in range(5)] == [False] * 5
    assert time.monotonic() - started < 3.0


def test_bridge_logs_each_failed_mqtt_connection_with_address_and_reason(
    processes: Any, database: Database, topic_prefix: str,
) -> None:
    from tests.integration.private_services import free_port

    port = free_port()  # nothing listens here
    env = {**bridge_env(topic_prefix, database.url), "GREENGRADER_MQTT_HOST": "127.0.0.1",
           "GREENGRADER_MQTT_PORT": str(port)}
    proc = processes.start(*bridge_argv(), env=env, name="bridge")
    started = time.monotonic()
    wait_for(lambda: f"MQTT connection to 127.0.0.1:{port} failed" in Path(proc.log_path).read_text(),
             what="a logged connection failure", timeout=10)
    assert time.monotonic() - started < 10
    log = Path(proc.log_path).read_text()
    assert "Connection refused" in log
    assert proc.poll() is None  # it keeps retrying
