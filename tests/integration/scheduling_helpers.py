"""Helpers of the scheduling and deadline tests: an injected clock, live workers,
submissions in given states, and readers of the grade messages in Redis."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.store import CarbonStore
from greengrader.celery_app import task_queues
from greengrader.context import Context
from greengrader.db import Database
from greengrader.models import Assignment, Course, Status, Submission

NOW = datetime(2023, 5, 10, 18, 30, tzinfo=UTC)
_ids = itertools.count(1000)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def celery_for(ctx: Context, broker: str) -> Celery:
    app = Celery("greengrader-test", broker=broker, set_as_current=False)
    app.conf.task_queues = task_queues(ctx.regions)
    app.conf.task_create_missing_queues = False
    app.conf.task_default_queue = "scheduling"
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_max_retries = 0
    app.conf.task_publish_retry = False
    return app


def add_submissions(db: Database, n: int, *, status: Status = Status.RECEIVED, at: datetime = NOW,
                    **fields: Any) -> list[int]:
    with db.transaction() as session:
        assignment = session.query(Assignment).first()
        if assignment is None:
            assignment = Assignment(course=Course(gradescope_id=1, name="cs124"), gradescope_id=2, version="v1")
        subs = [
            Submission(gradescope_id=i, assignment=assignment, sha256=f"{i:064d}", size=1,
                       metadata_json={}, received_at=at, updated_at=at, status=status.value, **fields)
            for i in itertools.islice(_ids, n)
        ]
        session.add_all(subs)
        session.flush()
        return [s.id for s in subs]


def queued_grades(rds: redis.Redis, queue: str) -> list[int]:
    """Submission ids of the ``grade`` messages waiting in a region's Redis list."""
    out = []
    for raw in rds.lrange(queue, 0, -1):
        msg = json.loads(raw)
        assert msg["headers"]["task"] == "greengrader.grade"
        args = json.loads(base64.b64decode(msg["body"]))[0]
        out.append(int(args[0]))
    return out


def status_of(db: Database, sid: int) -> Submission:
    with db.session() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        session.expunge(sub)
        return sub


def intensities_now(carbon_dir: Path, ctx: Context) -> dict[str, float]:
    provider = DatasetProvider(CarbonStore(ctx.settings.home, carbon_dir / "electricitymaps_greendcc"))
    return {r.name: provider.series(r.zone, NOW, NOW + timedelta(hours=1)).at(NOW) for r in ctx.regions.enabled()}


def live_workers(ctx: Context, regions: list[str] | None = None, concurrency: int = 4) -> None:
    """A live Celery worker in each of ``regions`` (default: every enabled one), as the
    worker's own heartbeat thread registers it, at the context's clock."""
    from greengrader.ops.workers import register_worker

    for name in regions if regions is not None else [r.name for r in ctx.regions.enabled()]:
        register_worker(ctx, {"hostname": f"w-{name}@test"}, source="celery", regions=[name],
                        concurrency=concurrency, started_at=NOW - timedelta(days=1))
