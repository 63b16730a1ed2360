"""Grading overhead end to end on real services: Postgres, Redis, a Celery worker
(``celery -A greengrader worker -Q region-us-west --pool solo``) and Docker.

For each of N submissions (one at a time, so no job waits behind another): ingest the
payload through the bridge's code path (stored ``received``, ``schedule`` enqueued after
commit), let a real scheduling worker (``-Q scheduling``) decide with the configured policy
and send ``grade`` to the chosen region's queue, and wait for the Result stored by the
region worker. ``--skip-scheduler`` instead moves the row to ``queued`` itself and sends
``grade`` directly (the grade path alone). Per job:

    turnaround = Result stored - received_at
    runtime    = the `docker run` part: container create -> exit (host clock)
    overhead   = turnaround - runtime
    grade path overhead = (Result stored - queued) - runtime   (what the grade task adds)

plus a breakdown from the status history. Prints p50/p95 (targets: overhead p50 <= 0.1 s,
p95 <= 0.3 s). Usage: python benchmarks/overhead.py [-n 50] [--example python-stats] [--skip-scheduler]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import redis
import sqlalchemy as sa
from sqlalchemy import select

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/7"
QUEUE = "region-us-west"


def admin(sql: str) -> None:
    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def wait_live(ctx: Any, regions: list[str], timeout_s: float = 120.0) -> None:
    """Ingest only once the region worker has announced itself: a job scheduled before any
    worker is live waits for the beat's sweep, which this benchmark does not run."""
    from greengrader.scheduling.liveness import region_liveness

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with ctx.db.session() as session:
            live = region_liveness(session, ctx.regions, ctx.now(), ctx.settings)
        if all(live[name].live for name in regions if name in live):
            return
        time.sleep(0.2)
    raise SystemExit(f"no live worker for {regions} within {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--example", default="python-stats")
    parser.add_argument("--case", default="correct")
    parser.add_argument("--skip-scheduler", action="store_true",
                        help="move rows to queued and send grade directly (no schedule task)")
    args = parser.parse_args()

    db_name = f"gg_bench_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{db_name}"')
    home = Path(tempfile.mkdtemp(prefix="gg-bench-"))
    os.environ.update(
        GREENGRADER_DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db_name}",
        GREENGRADER_BROKER_URL=REDIS_URL,
        GREENGRADER_HOME=str(home),
        GREENGRADER_PSEUDONYM_KEY="benchmark-only-pseudonym-key-0123",
    )
    redis.Redis.from_url(REDIS_URL).flushdb()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        from greengrader.bridge.ingest import ingest_bytes, prepare, store_prepared
        from greengrader.context import Context
        from greengrader.demo.examples import example_payload
        from greengrader.models import Result, Status, StatusEvent, Submission
        from greengrader.settings import get_settings

        ctx = Context.from_settings(get_settings())
        ctx.db.upgrade()
        # One region worker consumes every region queue: whichever region the policy picks,
        # the job is graded at once (this measures overhead, not placement).
        queues = [QUEUE] if args.skip_scheduler else [r.queue_name for r in ctx.regions.enabled()]
        roles = [("grade", ",".join(queues))] + ([] if args.skip_scheduler else [("sched", "scheduling")])
        for role, q in roles:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "greengrader", "worker", "-Q", q, "--pool", "solo",
                 "--loglevel", "WARNING", "-n", f"bench-{role}-{uuid.uuid4().hex[:6]}@%h",
                 "--without-gossip", "--without-mingle"],
                cwd=REPO, env=os.environ.copy(),
            ))
        wait_live(ctx, ["us-west"] if args.skip_scheduler else [r.name for r in ctx.regions.enabled()])
        app = ctx.celery
        rows = []
        for i in range(args.warmup + args.n):
            data = example_payload(args.example, args.case, 900000 + i)
            if not args.skip_scheduler:
                sid = ingest_bytes(ctx, data, "submissions/bench").submission_id
                assert sid is not None
            else:
                sid = store_prepared(ctx, [prepare(ctx.settings, data)])[0].submission_id
                assert sid is not None
                with ctx.db.transaction() as session:
                    sub = session.get(Submission, sid)
                    assert sub is not None
                    sub.region = "us-west"
                    sub.move_to(Status.SCHEDULED, now=ctx.now())
                    sub.move_to(Status.QUEUED, now=ctx.now())
                app.send_task("greengrader.grade", args=[sid], queue=QUEUE)
            deadline = time.monotonic() + 240
            while True:
                with ctx.db.session() as session:
                    result = session.scalars(select(Result).where(Result.submission_id == sid)).first()
                    sub = session.get(Submission, sid)
                    if result is not None and sub is not None and sub.status in ("graded", "failed", "error"):
                        events = {e.to_status: e.at for e in session.scalars(
                            select(StatusEvent).where(StatusEvent.submission_id == sid))}
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"submission {sid} not graded within 240 s (status {sub and sub.status}, region {sub and sub.region}, reason {sub and sub.status_reason})")
                time.sleep(0.002)
            if i < args.warmup:
                continue
            assert result.outcome == "graded", result.message
            received, queued, running, done = sub.received_at, events["queued"], events["running"], events[sub.status]
            rows.append({
                "turnaround": result.turnaround_s or 0.0,
                "runtime": result.runtime_s or 0.0,
                "overhead": (result.turnaround_s or 0.0) - (result.runtime_s or 0.0),
                "grade_path_overhead": (done - queued).total_seconds() - (result.runtime_s or 0.0),
                "ingest_to_queued": (queued - received).total_seconds(),
                "queued_to_claimed": (running - queued).total_seconds(),
                "claimed_to_container_start": (result.started_at - running).total_seconds() if result.started_at else 0.0,
                "container_wall_host": (result.finished_at - result.started_at).total_seconds() if result.started_at and result.finished_at else 0.0,
                "container_end_to_stored": (done - result.finished_at).total_seconds() if result.finished_at else 0.0,
            })
        mode = "grade path only (--skip-scheduler)" if args.skip_scheduler else "bridge path -> schedule worker -> region worker"
        print(f"{mode}; policy {ctx.settings.policy}, carbon {ctx.settings.carbon_source}")
        print(f"{len(rows)} submissions ({args.example}/{args.case}), one at a time, after {args.warmup} warm-up jobs;"
              f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'figure (s)':32} {'p50':>8} {'p95':>8} {'mean':>8}")
        for key in rows[0]:
            values = [r[key] for r in rows]
            print(f"{key:32} {pct(values, 50):8.3f} {pct(values, 95):8.3f} {statistics.fmean(values):8.3f}")
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
        from greengrader.db import dispose_all

        dispose_all(close=True)
        admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
