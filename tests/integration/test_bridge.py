"""The MQTT bridge against the real Mosquitto, Postgres and Redis (in-process bridge)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from greengrader.bridge.mqtt import Bridge
from greengrader.bridge.records import IngestOutcome
from greengrader.context import Context
from greengrader.db import Database
from greengrader.models import Assignment, Course, Submission
from greengrader.settings import Settings, get_settings
from tests import payloads
from tests.integration.bridge_helpers import (
    Receipts,
    bridge_env,
    count,
    publish,
    quarantine_reasons,
    wait_for,
)

FIXTURES = {
    "correct.zip": (900101, 10.0),
    "partial.zip": (900102, 6.0),
    "syntax_error.zip": (900103, 0.0),
    "infinite_loop.zip": (900104, 0.0),
    "correct_flat_layout.zip": (900105, 10.0),
    "correct_full_metadata.zip": (900106, 10.0),
}


@pytest.fixture
def bridge_settings(
    env_settings: Settings, database: Database, topic_prefix: str, mqtt_broker: tuple[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    for key, value in bridge_env(topic_prefix, database.url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GREENGRADER_MAX_PAYLOAD_BYTES", str(4 * 1024 * 1024))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def bridge(bridge_settings: Settings, database: Database) -> Iterator[Bridge]:
    ctx = Context.from_settings(bridge_settings)
    ctx.db = database
    running = Bridge(ctx)
    running.start()
    assert running.wait_connected(10)
    yield running
    running.close()


@pytest.fixture
def receipts(bridge_settings: Settings) -> Iterator[Receipts]:
    collector = Receipts(f"{bridge_settings.mqtt_receipt_topic}/#")
    yield collector
    collector.close()


def scheduled_ids(redis_url: str) -> list[int]:
    """Submission ids of the ``greengrader.schedule`` messages waiting in Redis."""
    client = redis.Redis.from_url(redis_url)
    ids = []
    for raw in client.lrange("scheduling", 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "greengrader.schedule"
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.append(args[0])
    client.close()
    return sorted(ids)


def test_fixture_payloads_are_stored_with_their_fields(
    bridge: Bridge, bridge_settings: Settings, database: Database, fixtures_dir: Path,
    receipts: Receipts, redis_url: str,
) -> None:
    folder = fixtures_dir / "hello-python" / "payloads"
    publish(bridge_settings.mqtt_topic, [(folder / name).read_bytes() for name in FIXTURES])
    wait_for(lambda: count(database) == len(FIXTURES), what="all fixture submissions")
    with database.session() as session:
        rows = {s.gradescope_id: s for s in session.scalars(select(Submission))}
        assignments = session.scalars(select(Assignment)).all()
        courses = session.scalars(select(Course)).all()
    assert sorted(rows) == sorted(gid for gid, _ in FIXTURES.values())
    for gradescope_id, score in FIXTURES.values():
        row = rows[gradescope_id]
        assert row.gradescope_score == score
        assert row.status == "received" and row.hostname == "10.0.3.17"
        assert row.topic == bridge_settings.mqtt_topic
        assert row.metadata_json["assignment"]["id"] == 31337
    # One source, both layouts: one assignment version in one course.
    assert [(a.gradescope_id, a.total_points, a.title) for a in assignments] == [(31337, 10.0, "Hello Python")]
    assert [c.gradescope_id for c in courses] == [4242]
    wait_for(lambda: len(scheduled_ids(redis_url)) == len(FIXTURES), what="schedule tasks in Redis")
    assert scheduled_ids(redis_url) == sorted(r.id for r in rows.values())
    wait_for(lambda: len(receipts.messages) == len(FIXTURES), what="receipts")
    topic, body = sorted(receipts.messages)[0]
    assert topic == f"{bridge_settings.mqtt_receipt_topic}/default/900101"
    assert json.loads(body) == {"submission_id": rows[900101].id, "status": "received", "reason": None}


def test_hostile_payloads_are_quarantined_while_the_bridge_keeps_serving(
    bridge: Bridge, bridge_settings: Settings, database: Database, receipts: Receipts,
) -> None:
    hostile = payloads.hostile_cases()
    hostile["too_large"] = payloads.build(submission={"huge.bin": os.urandom(5 * 1024 * 1024)})
    topic = f"{bridge_settings.mqtt_topic}/cse124"
    publish(topic, list(hostile.values()))
    publish(topic, [payloads.build()])
    wait_for(lambda: count(database) == 1 and len(quarantine_reasons(database)) == len(hostile),
             what="quarantine rows and the valid submission")
    assert quarantine_reasons(database) == sorted(hostile)
    wait_for(lambda: len(receipts.messages) == len(hostile) + 1, what="receipts")
    statuses = [json.loads(body)["status"] for _, body in receipts.messages]
    assert statuses.count("quarantined") == len(hostile) and statuses.count("received") == 1
    assert all(t.startswith(f"{bridge_settings.mqtt_receipt_topic}/cse124/") for t, _ in receipts.messages)


def test_duplicate_delivery_is_stored_once_and_new_content_is_a_new_row(
    bridge: Bridge, bridge_settings: Settings, database: Database, receipts: Receipts,
) -> None:
    first = payloads.build()
    publish(bridge_settings.mqtt_topic, [first, first, first])
    wait_for(lambda: len(receipts.messages) == 3, what="three receipts")
    assert count(database) == 1
    assert sorted(json.loads(b)["status"] for _, b in receipts.messages) == ["duplicate", "duplicate", "received"]
    resubmitted = payloads.build(submission={"solution.py": b"def add(a, b):\n    return b + a\n"})
    new_source = payloads.build(source={**payloads.SOURCE, "setup.sh": b"echo v2\n"})
    publish(bridge_settings.mqtt_topic, [resubmitted, new_source])
    wait_for(lambda: count(database) == 3, what="the resubmission and the new version")
    with database.session() as session:
        versions = session.scalars(select(Assignment.version)).all()
        assert len(set(versions)) == 2
        assert {s.gradescope_id for s in session.scalars(select(Submission))} == {700001}


def test_pseudonymised_payloads_carry_no_identities(
    bridge: Bridge, bridge_settings: Settings, database: Database,
) -> None:
    publish(bridge_settings.mqtt_topic, [payloads.build()])
    wait_for(lambda: count(database) == 1, what="the submission")
    with database.engine.connect() as conn:
        dump = b"".join(
            bytes(row[0]) for row in conn.exec_driver_sql("SELECT data FROM submission_payload")
        ) + str(list(conn.exec_driver_sql("SELECT metadata, users FROM submission"))).encode()
    for value in (payloads.REAL_NAME, payloads.REAL_EMAIL, payloads.REAL_SID):
        assert value.encode() not in dump
    assert b"4242" in dump  # the Gradescope user id is kept for joins


def test_worker_registration_topic_reaches_the_registry(
    bridge: Bridge, bridge_settings: Settings, database: Database,
) -> None:
    from greengrader.models import Worker

    facts = {"ip": "10.1.2.3", "name": "grader-7", "cpu model name": "Xeon", "cpu MHz": 2400.0,
             "sockets": 1, "cores": 8, "cache size": "32 MB", "memory size": 16 * 2**30}
    publish(bridge_settings.mqtt_workers_topic, [json.dumps(facts).encode(), b"not json"])
    wait_for(lambda: count(database, Worker) == 1, what="the worker row")
    assert count(database) == 0


def test_a_batch_that_fails_midway_is_redelivered_and_intake_resumes(
    bridge_settings: Settings, database: Database,
) -> None:
    """A fault after the first message of a batch was acked (here: in the outcome hook)
    must not strand the rest unacked: the bridge reconnects, the broker redelivers them,
    and later payloads keep flowing."""
    failures: list[int] = []

    def flaky(outcome: IngestOutcome) -> None:
        if not failures:
            failures.append(outcome.submission_id or -1)
            raise RuntimeError("injected fault mid-batch")

    ctx = Context.from_settings(bridge_settings)
    ctx.db = database
    running = Bridge(ctx, on_outcome=flaky)
    running.start()
    try:
        assert running.wait_connected(10)
        first = [payloads.build(payloads.metadata(810000 + i)) for i in range(8)]
        publish(bridge_settings.mqtt_topic, first)
        wait_for(lambda: count(database) == len(first), what="the failed batch to be redelivered and stored")
        assert failures, "the fault was not injected"
        later = [payloads.build(payloads.metadata(820000 + i)) for i in range(3)]
        publish(bridge_settings.mqtt_topic, later)
        wait_for(lambda: count(database) == len(first) + len(later), what="intake to resume")
    finally:
        running.close()
    with database.session() as session:
        ids = sorted(session.scalars(select(Submission.gradescope_id)))
    assert ids == sorted([810000 + i for i in range(8)] + [820000 + i for i in range(3)])  # none twice
