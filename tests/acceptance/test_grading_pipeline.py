"""The whole grading pipeline on real services: Mosquitto -> bridge -> Postgres ->
schedule -> Redis -> `celery worker -Q region-...` -> Docker -> Result."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from greengrader.context import Context
from greengrader.models import Decision, Result, StatusEvent, Submission, Worker
from greengrader.models.status import TERMINAL
from tests.conftest import celery_argv
from tests.integration.bridge_helpers import bridge_argv, bridge_env, publish

pytestmark = pytest.mark.docker

EXPECTED = {  # gradescope id -> (status, outcome, score)
    900101: ("graded", "graded", 10.0),
    900102: ("graded", "graded", 6.0),
    900103: ("graded", "graded", 0.0),
    900104: ("failed", "timeout", 0.0),
    900105: ("graded", "graded", 10.0),
}
PAYLOADS = ["correct.zip", "partial.zip", "syntax_error.zip", "infinite_loop.zip", "correct_flat_layout.zip"]


@pytest.fixture
def pipeline(context: Context, topic_prefix: str, tmp_path: Path, docker_client: Any, base_image: str) -> Iterator[dict[str, str]]:
    # A Redis database of its own: other suites' workers on the shared db 0 must not take
    # our tasks (nor ours theirs).
    broker = f"redis://127.0.0.1:6379/{8 + uuid.uuid4().int % 8}"
    redis.Redis.from_url(broker).flushdb()
    env = {**os.environ, **bridge_env(topic_prefix, context.db.url), "GREENGRADER_GRADE_TIMEOUT_S": "4",
           "GREENGRADER_BROKER_URL": broker}
    queues = ",".join(r.queue_name for r in context.regions.enabled())
    node = f"acc{uuid.uuid4().hex[:6]}"
    argvs = {
        "bridge": bridge_argv(),
        "scheduler": celery_argv("worker", "-Q", "scheduling", "--pool", "solo", "-n", f"{node}-sched@%h",
                                 "--without-gossip", "--without-mingle", "--loglevel", "WARNING"),
        "grader": celery_argv("worker", "-Q", queues, "--pool", "solo", "-n", f"{node}-grade@%h",
                              "--without-gossip", "--without-mingle", "--loglevel", "WARNING"),
    }
    procs = {name: subprocess.Popen(argv, env=env, stdout=(tmp_path / f"{name}.log").open("w"),
                                    stderr=subprocess.STDOUT) for name, argv in argvs.items()}
    try:
        ready = {"bridge": "subscribed to", "scheduler": "[queues]", "grader": "[queues]"}
        deadline = time.monotonic() + 60
        while not all(mark in (tmp_path / f"{name}.log").read_text() for name, mark in ready.items()):
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited: {(tmp_path / f'{name}.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "pipeline did not start within 60 s"
            time.sleep(0.2)
        # Placement counts live workers only: wait until the grader has announced itself.
        while not _registered(context, f"{node}-grade@"):
            assert time.monotonic() < deadline, "the grading worker did not register within 60 s"
            time.sleep(0.2)
        time.sleep(1)  # the workers' consumers attach just after the banner
        yield {"topic": env["GREENGRADER_MQTT_TOPIC"], "node": node, "logs": str(tmp_path)}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _registered(context: Context, prefix: str) -> bool:
    with context.db.session() as session:
        return session.scalars(select(Worker.id).where(Worker.hostname.startswith(prefix))).first() is not None


def test_payloads_published_over_mqtt_are_graded_in_docker_and_agree(
    context: Context, pipeline: dict[str, str], fixtures_dir: Path, docker_client: Any
) -> None:
    payloads = [(fixtures_dir / "hello-python" / "payloads" / name).read_bytes() for name in PAYLOADS]
    publish(pipeline["topic"], payloads)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with context.db.session() as session:
            statuses = dict(session.execute(select(Submission.gradescope_id, Submission.status)).all())
        if len(statuses) == len(EXPECTED) and all(s in {t.value for t in TERMINAL} for s in statuses.values()):
            break
        time.sleep(0.5)
    else:
        logs = "\n".join(p.read_text()[-1500:] for p in Path(pipeline["logs"]).glob("*.log"))
        pytest.fail(f"not all graded within 120 s: {statuses}\n{logs}")
    with context.db.session() as session:
        rows = session.execute(select(Submission, Result).join(Result, Result.submission_id == Submission.id)).all()
        got = {sub.gradescope_id: (sub.status, result.outcome, result.score) for sub, result in rows}
        assert got == EXPECTED
        assert all(result.agrees for _, result in rows)
        assert all(result.turnaround_s and result.runtime_s and result.turnaround_s >= result.runtime_s for _, result in rows)
        for sub, _ in rows:
            history = session.scalars(select(StatusEvent.to_status).where(StatusEvent.submission_id == sub.id)
                                      .order_by(StatusEvent.id)).all()
            assert history[-3:-1] == ["queued", "running"], history
            assert session.scalars(select(Decision).where(Decision.submission_id == sub.id)).first() is not None
    time.sleep(1)  # container removal runs right after each result is stored
    mine = [c for c in docker_client.containers.list(all=True, filters={"label": "greengrader.job"})
            if pipeline["node"] in c.labels.get("greengrader.worker", "")]
    assert mine == []
