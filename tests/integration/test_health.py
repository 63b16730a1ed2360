"""``greengrader health`` exit codes in the real situations that cause them.

Postgres, Redis and Mosquitto here are private instances started for this module (the
machine's shared ones serve other tests concurrently), so they can really be stopped and
started again. Docker is the machine's daemon; "daemon down" points DOCKER_HOST at a socket
nothing listens on rather than stopping the shared daemon.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from greengrader.db import Database
from greengrader.models import Assignment, Course, Status, Submission, Worker, utcnow
from tests.conftest import clean_environ
from tests.integration.private_services import (
    PrivateMosquitto,
    PrivatePostgres,
    PrivateRedis,
)

REGIONS = """
[regions.us-west]
zone = "US-CAL-CISO"
lat = 32.88
lon = -117.23

[regions.us-east]
zone = "US-MIDA-PJM"
lat = 39.95
lon = -75.17
"""


@dataclass
class Stack:
    pg: PrivatePostgres
    redis: PrivateRedis
    mqtt: PrivateMosquitto
    db: Database
    env: dict[str, str]

    def health(self, **overrides: str) -> tuple[int, dict[str, Any]]:
        proc = subprocess.run(
            [sys.executable, "-m", "greengrader", "health", "--json"],
            env={**self.env, **overrides}, capture_output=True, text=True, timeout=60,
        )
        assert proc.stdout, proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def line(self, **overrides: str) -> tuple[int, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "greengrader", "health"],
            env={**self.env, **overrides}, capture_output=True, text=True, timeout=60,
        )
        return proc.returncode, proc.stdout


def states(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["state"] for c in report["checks"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("health")
    pg, redis, mqtt = PrivatePostgres(), PrivateRedis(root / "redis"), PrivateMosquitto(root / "mqtt")
    pg.init()
    pg.start()
    redis.start()
    mqtt.setup()
    mqtt.start()
    db = Database(pg.url)
    db.upgrade()
    regions_file = root / "regions.toml"
    regions_file.write_text(REGIONS)
    env = {
        **clean_environ(),
        "GREENGRADER_HOME": str(root / "home"),
        "GREENGRADER_DATABASE_URL": pg.url,
        "GREENGRADER_BROKER_URL": redis.url,
        "GREENGRADER_REGIONS_FILE": str(regions_file),
        "GREENGRADER_MQTT_HOST": "127.0.0.1",
        "GREENGRADER_MQTT_PORT": str(mqtt.tls_port),
        "GREENGRADER_MQTT_TLS": "true",
        "GREENGRADER_MQTT_CA_FILE": str(mqtt.ca_file),
        "GREENGRADER_MQTT_USERNAME": "monitor",
        "GREENGRADER_MQTT_PASSWORD": mqtt.password("monitor"),
        "GREENGRADER_HEALTH_TIMEOUT_S": "3",
    }
    with db.transaction() as session:
        for region in ("us-west", "us-east"):
            session.add(Worker(hostname=f"worker-{region}", region=region, last_heartbeat=utcnow()))
    try:
        yield Stack(pg, redis, mqtt, db, env)
    finally:
        db.dispose()
        mqtt.stop()
        redis.stop()
        pg.cleanup()


@pytest.fixture
def fresh_heartbeats(stack: Stack) -> None:
    with stack.db.transaction() as session:
        session.execute(sa.update(Worker).values(last_heartbeat=utcnow()))


def test_ok_when_everything_runs(stack: Stack, fresh_heartbeats: None) -> None:
    code, line = stack.line()
    assert code == 0, line
    assert line.startswith("GREENGRADER OK - database ok (postgresql")
    # Each service check names what it checked, so a misspelt variable shows.
    assert f"database ok ({stack.pg.url})" in line
    assert "; broker ok (redis://" in line and "; mqtt ok (127.0.0.1:" in line
    assert line.count("\n") == 1 and " | database_up=1" in line


def _unscheduled_submission(db: Database, age: timedelta) -> int:
    with db.transaction() as session:
        course = Course(gradescope_id=1, name="cs101")
        assignment = Assignment(course=course, gradescope_id=2, version="v1")
        sub = Submission(
            gradescope_id=3, assignment=assignment, sha256="0" * 64, size=1, metadata_json={},
            received_at=utcnow() - age, status=Status.RECEIVED.value,
        )
        session.add(sub)
        session.flush()
        return sub.id


def test_warning_when_a_submission_waits_unscheduled(stack: Stack, fresh_heartbeats: None) -> None:
    _unscheduled_submission(stack.db, timedelta(minutes=10))
    try:
        code, report = stack.health()
        assert code == 1, report
        assert states(report)["unscheduled"] == "WARNING"
        assert states(report)["bridge"] == "OK"
        code, _ = stack.health(GREENGRADER_HEALTH_UNSCHEDULED_CRIT_S="540")
        assert code == 2
    finally:
        with stack.db.transaction() as session:
            for table in ("status_event", "submission", "assignment", "course"):
                session.execute(sa.text(f"DELETE FROM {table}"))


def test_warning_when_a_region_has_no_live_worker(stack: Stack, fresh_heartbeats: None) -> None:
    with stack.db.transaction() as session:
        session.execute(
            sa.update(Worker).where(Worker.region == "us-east")
            .values(last_heartbeat=utcnow() - timedelta(minutes=5))
        )
    code, report = stack.health()
    assert code == 1 and states(report)["workers"] == "WARNING", report
    with stack.db.transaction() as session:
        session.execute(sa.update(Worker).values(last_heartbeat=utcnow() - timedelta(minutes=5)))
    code, report = stack.health()
    assert code == 2 and states(report)["workers"] == "CRITICAL", report


def test_critical_while_redis_is_stopped(stack: Stack, fresh_heartbeats: None) -> None:
    stack.redis.stop()
    try:
        code, report = stack.health()
        assert code == 2 and states(report)["broker"] == "CRITICAL", report
    finally:
        stack.redis.start()
    assert stack.health()[0] == 0


def test_critical_while_postgres_is_stopped(stack: Stack) -> None:
    stack.pg.stop()
    try:
        code, report = stack.health()
        assert code == 2, report
        assert states(report)["database"] == "CRITICAL"
        assert states(report)["backlog"] == "UNKNOWN"
    finally:
        stack.pg.start()
    with stack.db.transaction() as session:
        session.execute(sa.update(Worker).values(last_heartbeat=utcnow()))
    assert stack.health()[0] == 0


def test_critical_while_mosquitto_is_stopped(stack: Stack, fresh_heartbeats: None) -> None:
    stack.mqtt.stop()
    try:
        code, report = stack.health()
        assert code == 2 and states(report)["mqtt"] == "CRITICAL", report
    finally:
        stack.mqtt.start()
    assert stack.health()[0] == 0


def test_critical_when_mqtt_credentials_are_refused(stack: Stack, fresh_heartbeats: None) -> None:
    code, report = stack.health(GREENGRADER_MQTT_PASSWORD="wrong")
    assert code == 2, report
    mqtt = next(c for c in report["checks"] if c["name"] == "mqtt")
    assert "refused" in mqtt["summary"]


def test_critical_when_docker_daemon_is_unreachable(stack: Stack, fresh_heartbeats: None, tmp_path: Path) -> None:
    code, report = stack.health(DOCKER_HOST=f"unix://{tmp_path}/docker.sock")
    assert code == 2 and states(report)["docker"] == "CRITICAL", report
    code, report = stack.health(DOCKER_HOST=f"unix://{tmp_path}/docker.sock", GREENGRADER_EXECUTOR="kubernetes")
    assert code == 0, report


def test_unknown_when_the_database_is_not_migrated(stack: Stack, fresh_heartbeats: None) -> None:
    admin = sa.create_engine(stack.pg.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE unmigrated"))
    try:
        code, report = stack.health(GREENGRADER_DATABASE_URL=stack.pg.url.rsplit("/", 1)[0] + "/unmigrated")
        assert code == 3, report
        assert states(report)["database"] == "OK"
        assert states(report)["backlog"] == "UNKNOWN"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE unmigrated WITH (FORCE)"))
        admin.dispose()


def test_unknown_when_the_configuration_is_invalid(stack: Stack) -> None:
    code, line = stack.line(GREENGRADER_HEALTH_TIMEOUT_S="-1")
    assert code == 3
    assert line.startswith("GREENGRADER UNKNOWN - configuration: GREENGRADER_HEALTH_TIMEOUT_S")
    assert os.environ.get("GREENGRADER_HEALTH_TIMEOUT_S") is None


def test_sandbox_warns_on_runc_and_is_critical_when_gvisor_is_required_but_missing(
    stack: Stack, fresh_heartbeats: None
) -> None:
    code, report = stack.health()
    docker = next(c for c in report["checks"] if c["name"] == "docker")
    assert (code, docker["state"], docker["gvisor"]) == (0, "OK", 1), report  # gVisor registered (setup-gvisor.sh)
    assert "gVisor via runtime runsc" in docker["summary"]
    code, report = stack.health(GREENGRADER_GVISOR_RUNTIME="no-such-runtime")
    docker = next(c for c in report["checks"] if c["name"] == "docker")
    assert (code, docker["state"], docker["gvisor"]) == (1, "WARNING", 0), report
    assert "host kernel" in docker["summary"]
    code, report = stack.health(GREENGRADER_GVISOR_RUNTIME="no-such-runtime", GREENGRADER_SANDBOX="gvisor")
    assert code == 2 and states(report)["docker"] == "CRITICAL", report
    code, report = stack.health(GREENGRADER_SANDBOX="runc")
    assert code == 0 and "runc" in next(c for c in report["checks"] if c["name"] == "docker")["summary"]
