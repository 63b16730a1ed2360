"""The bridge's fast ``schedule`` publish sends what ``send_task`` would, on real Redis."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from greengrader.bridge.ingest import enqueue_schedule_many
from greengrader.context import Context
from greengrader.tasks.names import SCHEDULE_TASK

PER_MESSAGE = {"id", "root_id"}  # the task id, different for every message


def _queued(redis_url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    try:
        # kombu LPUSHes and workers BRPOP: the oldest message is last.
        return [json.loads(raw) for raw in reversed(client.lrange("scheduling", 0, -1))]
    finally:
        client.close()


def test_batch_publish_matches_send_task(context: Context, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).delete("scheduling")
    app = context.celery
    with app.producer_or_acquire() as producer:
        app.send_task(SCHEDULE_TASK, args=[41], retry=False, producer=producer,
                      argsrepr="[41]", kwargsrepr="{}")
    assert enqueue_schedule_many(context, [41, 42, 43])

    reference, *batch = _queued(redis_url)
    redis.Redis.from_url(redis_url).delete("scheduling")
    assert len(batch) == 3
    for message, submission_id in zip(batch, [41, 42, 43], strict=True):
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert (args, kwargs) == ([submission_id], {})
        assert message["headers"]["argsrepr"] == f"[{submission_id}]"
        assert message["properties"]["correlation_id"] == message["headers"]["id"]
    first = batch[0]
    same = {k for k in reference["headers"] if k not in PER_MESSAGE}
    assert {k: first["headers"][k] for k in same} == {k: reference["headers"][k] for k in same}
    assert set(first["headers"]) == set(reference["headers"])
    assert first["body"] == reference["body"]
    for key in ("content-type", "content-encoding"):
        assert first[key] == reference[key]
    for key in ("delivery_mode", "reply_to", "delivery_info", "priority", "body_encoding"):
        assert first["properties"].get(key) == reference["properties"].get(key), key
    assert len({m["headers"]["id"] for m in batch}) == 3
