"""The Celery app really starts on Redis + Postgres and on the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from greengrader.settings import Settings
from tests.conftest import Processes, celery_argv, clean_environ


def _ping(env: dict[str, str] | None = None, attempts: int = 20) -> str:
    out = ""
    for _ in range(attempts):
        res = subprocess.run(
            celery_argv("inspect", "ping", "--timeout", "2"),
            env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60,
        )
        out = res.stdout + res.stderr
        if "pong" in out:
            return out
        time.sleep(1)
    return out


def test_region_worker_answers_ping_on_redis(env_settings: Settings, processes: Processes) -> None:
    processes.start(*celery_argv("worker", "-Q", "region-us-west", "--pool", "solo", "-n", "w1@%h"), name="worker")
    out = _ping()
    assert "pong" in out, out


def test_beat_sends_the_sweep_to_the_scheduling_queue(
    env_settings: Settings, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENGRADER_SWEEP_INTERVAL_S", "1")
    processes.start(*celery_argv("beat", "-s", str(env_settings.home / "beat-schedule")), name="beat")
    client = redis.Redis.from_url(env_settings.effective_broker_url)
    deadline = time.monotonic() + 30
    tasks: list[str] = []
    while time.monotonic() < deadline and len(tasks) < 2:
        raw = client.lrange("scheduling", 0, -1)
        tasks = [json.loads(m)["headers"]["task"] for m in raw]
        time.sleep(0.5)
    assert tasks.count("greengrader.sweep") >= 2, tasks


def test_mistyped_region_queue_fails_loudly(env_settings: Settings) -> None:
    code = (
        "from greengrader.celery_app import app\n"
        "try:\n"
        "    app.send_task('greengrader.grade', args=[1], queue='region-us-wset')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "QueueNotFound" in out.stdout, out.stdout + out.stderr


def test_embedded_default_worker_answers_ping(tmp_path: Path, processes: Processes) -> None:
    env = {**clean_environ(), "GREENGRADER_HOME": str(tmp_path / "home")}
    processes.start(*celery_argv("worker", "-Q", "region-us-west", "--pool", "solo"), env=env, inherit=False)
    out = _ping(env)
    assert "pong" in out, out
    assert (tmp_path / "home" / "broker" / "control").is_dir()


def test_region_worker_consumes_a_task_sent_to_its_queue(env_settings: Settings, processes: Processes) -> None:
    worker = processes.start(*celery_argv("worker", "-Q", "region-us-west", "--pool", "solo", "-n", "w3@%h",
                                          "-l", "INFO"), name="worker")
    assert "pong" in _ping()
    code = ("from greengrader.celery_app import app\n"
            "print(app.send_task('greengrader.grade', args=[987654], queue='region-us-west').id)\n")
    sent = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    task_id = sent.stdout.strip()
    client = redis.Redis.from_url(env_settings.effective_broker_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (client.llen("region-us-west") or client.hlen("unacked")
                                           or task_id not in Path(worker.log_path).read_text()):
        time.sleep(0.5)
    log = Path(worker.log_path).read_text()
    assert f"greengrader.grade[{task_id}] received" in log, log
    assert (client.llen("region-us-west"), client.hlen("unacked")) == (0, 0)


def test_a_bad_regions_file_stops_the_worker_with_one_line(env_settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "regions.toml"
    bad.write_text("[regions.x]\nlat = 1\n")
    res = subprocess.run(celery_argv("worker", "-Q", "region-us-west", "--pool", "solo"),
                         env={**os.environ, "GREENGRADER_REGIONS_FILE": str(bad)},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.startswith("greengrader: GREENGRADER_REGIONS_FILE: invalid regions file"), res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stdout + res.stderr
