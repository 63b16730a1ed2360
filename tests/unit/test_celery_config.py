"""Celery's configuration: no I/O at import, region queues bound by name, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from celery import Celery
from kombu import Queue

from greengrader.celery_app import SCHEDULING_QUEUE, task_queues
from greengrader.regions.registry import load_regions
from tests.conftest import clean_environ

CONFIGURE = """
import json, os, sys
import celeryconfig
from greengrader.celery_app import app
home = sys.argv[1]
imported_only = os.path.exists(home)
queues = {q.name: [q.exchange.name, q.routing_key] for q in app.amqp.queues.values()}
print(json.dumps({"imported_only": imported_only, "queues": queues, "broker": sorted(os.listdir(home + "/broker"))}))
"""


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], env={**clean_environ(), **env},
                          capture_output=True, text=True, timeout=60)


def test_import_does_no_io_and_configuring_makes_queues_and_folders(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = _python(CONFIGURE, str(home), GREENGRADER_HOME=str(home))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["imported_only"] is False  # nothing was created until Celery read its configuration
    assert out["broker"] == ["control", "queue"]
    names = [SCHEDULING_QUEUE] + [r.queue_name for r in load_regions().enabled()]
    assert out["queues"] == {name: [SCHEDULING_QUEUE, name] for name in names}


def test_a_bad_regions_file_is_one_line_when_celery_reads_its_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "regions.toml"
    bad.write_text("[regions.x]\nlat = 1\n")
    env = {"GREENGRADER_HOME": str(tmp_path / "home"), "GREENGRADER_REGIONS_FILE": str(bad)}
    assert _python("import celeryconfig, greengrader.celery_app", **env).returncode == 0
    res = _python("from greengrader.celery_app import app; app.conf.broker_url", **env)
    assert res.returncode == 2
    assert res.stderr.startswith("greengrader: GREENGRADER_REGIONS_FILE: invalid regions file")
    assert res.stderr.count("\n") == 1, res.stderr


def test_invalid_settings_are_one_line_too(tmp_path: Path) -> None:
    res = _python("from greengrader.celery_app import app; app.conf.broker_url",
                  GREENGRADER_HOME=str(tmp_path / "home"), GREENGRADER_SWEEP_INTERVAL_S="0")
    assert (res.returncode, res.stderr.count("\n")) == (2, 1), res.stderr
    assert res.stderr.startswith("greengrader: GREENGRADER_SWEEP_INTERVAL_S: ")
    assert not os.path.exists(tmp_path / "home")


def _delivered(queues: list[Queue]) -> dict[str, int]:
    """Messages in each queue after one publish to the default exchange with its routing key."""
    app = Celery("test", broker="memory://", set_as_current=False)
    app.conf.task_queues = queues
    app.conf.task_default_queue = SCHEDULING_QUEUE
    app.conf.task_default_exchange = f"scheduling-{uuid.uuid4().hex}"  # the memory broker is per process
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        declared = [q.bind(channel) for q in app.amqp.queues.values()]
        for queue in declared:
            queue.declare()
            queue.purge()
        conn.Producer().publish({"x": 1}, exchange=declared[0].exchange, routing_key=SCHEDULING_QUEUE)
        counts = {q.name: q.queue_declare(passive=True).message_count for q in declared}
        for queue in declared:
            queue.purge()
    return counts


def test_a_publish_by_routing_key_reaches_one_queue() -> None:
    queues = task_queues(load_regions())
    assert [q.routing_key for q in queues] == [q.name for q in queues]
    assert _delivered(queues) == {q.name: int(q.name == SCHEDULING_QUEUE) for q in queues}
    # Bare queues all share the default routing key: the same publish fans out to every one.
    assert set(_delivered([Queue(q.name) for q in queues]).values()) == {1}
