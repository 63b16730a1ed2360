"""``greengrader metrics serve`` after a real ingestion: gauges from Postgres and Redis,
served behind basic auth."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from greengrader.context import Context
from greengrader.models import Decision, Result, Status, Submission, utcnow
from tests.conftest import Processes
from tests.integration.private_services import free_port, wait_port

AUTH = ("prometheus", "scrape-secret")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def ingested(context: Context, fixtures_dir: Path) -> int:
    """One fixture payload stored through the real CLI (`greengrader ingest`)."""
    payload = fixtures_dir / "hello-python" / "payloads" / "correct.zip"
    proc = subprocess.run(
        [sys.executable, "-m", "greengrader", "ingest", str(payload)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    with context.db.session() as session:
        return session.query(Submission.id).one()[0]


@pytest.fixture
def exporter(processes: Processes, ingested: int) -> Iterator[str]:
    port = free_port()
    env = {"GREENGRADER_METRICS_USERNAME": AUTH[0], "GREENGRADER_METRICS_PASSWORD": AUTH[1]}
    proc = processes.start(
        sys.executable, "-m", "greengrader", "metrics", "serve", "--addr", "127.0.0.1",
        "--port", str(port), env=env, name="exporter",
    )
    try:
        wait_port(port, timeout=60)
    except TimeoutError:
        pytest.fail(Path(proc.log_path).read_text())
    yield f"http://127.0.0.1:{port}/metrics"


def test_jobs_queue_depth_and_carbon_after_ingestion(
    exporter: str, context: Context, ingested: int
) -> None:
    assert requests.get(exporter, timeout=10).status_code == 401
    assert requests.get(exporter, auth=(AUTH[0], "wrong"), timeout=10).status_code == 401
    # A grade waiting on the us-west queue, put there through the real Celery app and Redis.
    context.celery.send_task("greengrader.grade", args=[ingested], queue="region-us-west")
    with context.db.transaction() as session:
        session.add(Decision(
            submission_id=ingested, policy="carbon-optimal", region="ca-central", start_at=utcnow(),
            expected_g=10.0,
            candidates={"us-west": {"intensity": 300.0, "expected_g": 33.0},
                        "ca-central": {"intensity": 100.0, "expected_g": 10.0}},
        ))
        session.add(Result(submission_id=ingested, region="ca-central", outcome="graded",
                           carbon_g=12.0, intensity=100.0, energy_kwh=0.1))
    stored = samples(requests.get(exporter, auth=AUTH, timeout=10).text)

    received = stored[("greengrader_jobs", (("status", Status.RECEIVED.value),))]
    assert received == 1.0
    assert stored[("greengrader_jobs", (("status", "graded"),))] == 0.0
    assert stored[("greengrader_queue_depth", (("queue", "region-us-west"), ("region", "us-west")))] == 1.0
    assert stored[("greengrader_queue_depth", (("queue", "region-us-east"), ("region", "us-east")))] == 0.0
    assert stored[("greengrader_carbon_emitted_grams", (("region", "ca-central"),))] == 12.0
    # Same energy in the baseline region (us-west, 3x the intensity): 36 g, so 24 g saved.
    assert stored[("greengrader_carbon_saved_grams", (("baseline", "us-west"), ("basis", "measured")))] == 24.0
    assert stored[("greengrader_carbon_saved_grams", (("baseline", "us-west"), ("basis", "expected")))] == 23.0
    assert stored[("greengrader_carbon_baseline_grams", ())] == 36.0
    last = stored[("greengrader_last_message_timestamp_seconds", ())]
    assert abs(last - time.time()) < 300
    assert stored[("greengrader_exporter_source_up", (("source", "database"),))] == 1.0
    assert stored[("greengrader_exporter_source_up", (("source", "broker"),))] == 1.0

    with context.db.transaction() as session:
        sub = session.get(Submission, ingested)
        assert sub is not None
        sub.received_at = utcnow() - timedelta(minutes=10)
    stored = samples(requests.get(exporter, auth=AUTH, timeout=10).text)
    assert 590 <= stored[("greengrader_oldest_unscheduled_age_seconds", ())] <= 900


def test_refuses_an_open_public_bind() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "greengrader", "metrics", "serve", "--addr", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("GREENGRADER_METRICS_")},
    )
    assert proc.returncode != 0
    assert "GREENGRADER_METRICS_PASSWORD" in proc.stderr
