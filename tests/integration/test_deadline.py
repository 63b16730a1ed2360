"""Deadline night on real Postgres and Redis, with an injected clock: a backlog many
times every timeout is waiting, not lost; placement follows live workers; a dead
region's queue moves; per-assignment limits; stale messages are fenced out."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis

from greengrader.context import Context
from greengrader.grading.service import grade_submission
from greengrader.models import Assignment, Decision, Status, Submission, SubmissionPayload
from greengrader.scheduling.service import schedule_submission
from greengrader.scheduling.sweep import run_sweep
from tests.integration.scheduling_helpers import (
    NOW,
    Clock,
    add_submissions,
    live_workers,
    queued_grades,
    status_of,
)


def grade_messages(rds: redis.Redis, queue: str) -> list[tuple[int, int | None]]:
    out = []
    for raw in rds.lrange(queue, 0, -1):
        args, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        out.append((int(args[0]), kwargs.get("dispatch")))
    return out


def at(ctx: Context, seconds: float, live: list[str] | None = None) -> None:
    """Move the clock on; the workers in ``live`` keep sending heartbeats."""
    ctx.clock = Clock(ctx.now() + timedelta(seconds=seconds))
    live_workers(ctx, live)


def test_a_backlog_many_times_every_threshold_is_waiting_not_lost(make_ctx: Any, rds: redis.Redis) -> None:
    ctx = make_ctx(policy="static", default_region="us-west", live=["us-west"])
    ids = add_submissions(ctx.db, 150)
    for sid in ids:
        assert schedule_submission(ctx, sid) is not None
    s = ctx.settings
    threshold = s.grade_timeout_s + s.stuck_margin_s + s.received_grace_s
    for _ in range(4):  # the queue waits ten times every threshold, in four sweeps
        at(ctx, 2.5 * threshold, ["us-west"])
        report = run_sweep(ctx)
        assert not (report.lost or report.requeued or report.errored or report.moved), report.summary()
    assert sorted(queued_grades(rds, "region-us-west")) == sorted(ids)  # nothing sent twice
    with ctx.db.session() as session:
        rows = session.query(Submission).filter(Submission.id.in_(ids)).all()
        assert {(r.status, r.attempts, r.dispatch) for r in rows} == {("queued", 0, 1)}

    # A broker restart that dropped the queue: every message is re-sent, once, in batches.
    rds.flushdb()
    at(ctx, 1, ["us-west"])
    lost = run_sweep(ctx, limit=100).lost + run_sweep(ctx, limit=100).lost
    assert sorted(lost) == sorted(ids)
    assert sorted(grade_messages(rds, "region-us-west")) == sorted((i, 2) for i in ids)
    assert not run_sweep(ctx).lost


TAKE_AND_DIE = """
import os, signal
from kombu import Connection
with Connection({url!r}) as conn:
    conn.SimpleQueue("region-us-west").get(timeout=10)  # delivered: now in kombu's `unacked`
    os.kill(os.getpid(), signal.SIGKILL)  # before any claim, as a worker killed mid-delivery
"""


def test_a_message_taken_by_a_worker_killed_before_its_claim_is_re_sent(
    make_ctx: Any, rds: redis.Redis, redis_url: str
) -> None:
    """A worker SIGKILLed between taking a message and claiming its row leaves the message
    in `unacked` until Redis's visibility timeout (hours) while the row stays `queued`.
    Just taken, it is in hand and not re-sent; older than the grace, it is lost: re-sent
    with a new dispatch number, which fences the old message out should it ever return."""
    ctx = make_ctx(policy="static", default_region="us-west", live=["us-west"], received_grace_s=3.0)
    (sid,) = add_submissions(ctx.db, 1)
    assert schedule_submission(ctx, sid) is not None
    subprocess.run([sys.executable, "-c", TAKE_AND_DIE.format(url=redis_url)], timeout=60, check=False)
    assert rds.llen("region-us-west") == 0 and rds.hlen("unacked") == 1
    at(ctx, 10, ["us-west"])  # the row has been `queued` longer than the grace
    assert not run_sweep(ctx).lost  # taken moments ago: a live worker would be claiming it
    time.sleep(3.5)
    at(ctx, 1, ["us-west"])
    assert run_sweep(ctx).lost == [sid]
    assert grade_messages(rds, "region-us-west") == [(sid, 2)]
    assert status_of(ctx.db, sid).dispatch == 2


def test_default_registry_with_one_live_region_places_everything_there(make_ctx: Any, rds: redis.Redis) -> None:
    ctx = make_ctx(policy="carbon-optimal", live=["us-west"])
    assert len(ctx.regions.enabled()) > 1
    ids = add_submissions(ctx.db, 6)
    decisions = [schedule_submission(ctx, sid) for sid in ids]
    assert all(d is not None and d.region == "us-west" for d in decisions)
    assert sorted(queued_grades(rds, "region-us-west")) == sorted(ids)
    d = decisions[0]
    assert d is not None
    skipped = {name: c.get("why_not") for name, c in d.candidates.items() if name != "us-west"}
    assert skipped and set(skipped.values()) == {"no live worker"}
    assert "no live worker" in d.reason


def test_with_no_live_worker_jobs_wait_and_are_placed_when_one_appears(make_ctx: Any, rds: redis.Redis) -> None:
    from greengrader.ops.health import check_workers

    ctx = make_ctx(live=[])
    ids = add_submissions(ctx.db, 3)
    assert [schedule_submission(ctx, sid) for sid in ids] == [None, None, None]
    assert {(status_of(ctx.db, i).status, status_of(ctx.db, i).region) for i in ids} == {("scheduled", None)}
    with ctx.db.session() as session:
        check = check_workers(session, ctx.settings, ctx.regions, ctx.now())
    assert check.state.name == "CRITICAL" and "3 jobs waiting for a live worker" in check.summary
    at(ctx, 600, [])
    assert not run_sweep(ctx).placed  # still nobody: they keep waiting, nothing is sent
    at(ctx, 10, ["us-east"])
    assert sorted(run_sweep(ctx).placed) == sorted(ids)
    for sid in ids:  # what the schedule task does with the messages just sent
        decision = schedule_submission(ctx, sid)
        assert decision is not None and decision.region == "us-east"


def test_a_dead_region_has_its_queue_moved_and_its_old_messages_fenced_out(make_ctx: Any, rds: redis.Redis) -> None:
    ctx = make_ctx(policy="static", default_region="us-west", live=["us-east"], capacity_aware=False)
    live_workers(ctx, ["us-west"])
    ids = add_submissions(ctx.db, 10)
    with ctx.db.transaction() as session:
        session.add_all([SubmissionPayload(submission_id=sid, data=b"") for sid in ids])
    for sid in ids:
        assert schedule_submission(ctx, sid) is not None
    assert sorted(queued_grades(rds, "region-us-west")) == sorted(ids)
    held = add_submissions(ctx.db, 1, status=Status.SCHEDULED, region="us-west",
                           not_before=NOW + timedelta(hours=5))  # waiting for a greener hour there
    s = ctx.settings
    at(ctx, s.health_heartbeat_max_age_s, ["us-east"])  # us-west has stopped beating
    assert not run_sweep(ctx).moved  # not dead yet: only silent for the heartbeat limit
    at(ctx, s.region_dead_after_s, ["us-east"])
    assert sorted(run_sweep(ctx).moved) == sorted(ids + held)
    assert status_of(ctx.db, held[0]).status == "received"  # decided again, off the dead region
    for sid in ids:
        decision = schedule_submission(ctx, sid)
        assert decision is not None and decision.region == "us-east"
        assert decision.reason.startswith("moved off us-west: no live worker since")
    assert sorted(queued_grades(rds, "region-us-east")) == sorted(ids)
    with ctx.db.session() as session:
        assert session.query(Decision).filter(Decision.submission_id == ids[0]).count() == 2
    # us-west comes back and takes its old messages: each is stale and does nothing.
    for sid, dispatch in grade_messages(rds, "region-us-west"):
        assert grade_submission(ctx, sid, task_id=f"old-{sid}", dispatch=dispatch) is None
        row = status_of(ctx.db, sid)
        assert (row.status, row.region, row.attempts) == ("queued", "us-east", 0)


def test_a_job_within_its_own_limit_is_not_recovered_even_past_the_global_one(make_ctx: Any) -> None:
    ctx = make_ctx(live=["us-west"])
    s = ctx.settings
    (sid,) = add_submissions(ctx.db, 1, status=Status.RUNNING, region="us-west", attempts=1,
                             task_id="t-long", worker="w-us-west@test", dispatch=1)
    with ctx.db.transaction() as session:
        assignment = session.query(Assignment).one()
        assignment.limits, assignment.build_status = {"timeout_s": 1800}, "ready"
    at(ctx, s.grade_timeout_s + s.stuck_margin_s + 60, ["us-west"])  # past the global limit
    assert not run_sweep(ctx).requeued
    at(ctx, 1800 - s.grade_timeout_s, ["us-west"])  # past its own limit plus the margin
    assert run_sweep(ctx).requeued == [sid]
    assert "own limit (1920 s)" in (status_of(ctx.db, sid).status_reason or "")


def test_a_job_whose_worker_died_or_restarted_is_recovered_at_once(make_ctx: Any, rds: redis.Redis) -> None:
    ctx = make_ctx(live=["us-west", "us-east"])
    dead = add_submissions(ctx.db, 1, status=Status.RUNNING, region="us-west", attempts=1,
                           task_id="t-dead", worker="w-us-west@test", dispatch=1)
    restarted = add_submissions(ctx.db, 1, status=Status.RUNNING, region="us-east", attempts=1,
                                task_id="t-old", worker="w-us-east@test", dispatch=1)
    at(ctx, ctx.settings.health_heartbeat_max_age_s + 1, [])  # nobody beats any more
    from greengrader.ops.workers import register_worker

    register_worker(ctx, {"hostname": "w-us-east@test"}, source="celery", regions=["us-east"],
                    concurrency=1, started_at=ctx.now())
    report = run_sweep(ctx)
    assert sorted(report.requeued) == sorted(dead + restarted)
    assert "stopped sending heartbeats" in (status_of(ctx.db, dead[0]).status_reason or "")
    assert "restarted since it took the job" in (status_of(ctx.db, restarted[0]).status_reason or "")
    assert grade_messages(rds, "region-us-east") == [(restarted[0], 2)]


def test_a_poisoned_job_ends_in_error_after_max_attempts(make_ctx: Any) -> None:
    """The same message redelivered after its pool process died each time (what
    task_reject_on_worker_lost does): counted on claim, given up after max_attempts."""
    ctx = make_ctx(live=["us-west"])
    (sid,) = add_submissions(ctx.db, 1, status=Status.QUEUED, region="us-west", dispatch=1)
    with ctx.db.transaction() as session:
        session.add(SubmissionPayload(submission_id=sid, data=b""))
    from greengrader.grading.claim import claim_submission

    for _ in range(ctx.settings.max_attempts):
        assert claim_submission(ctx, sid, "t-poison", "w-us-west@test", 1) is not None  # then the process dies
    assert claim_submission(ctx, sid, "t-poison", "w-us-west@test", 1) is None
    row = status_of(ctx.db, sid)
    assert row.status == "error" and f"gave up after {ctx.settings.max_attempts} attempts" in (row.status_reason or "")


def test_unschedulable_rows_back_off_and_stop(make_ctx: Any, rds: redis.Redis) -> None:
    from greengrader.scheduling.sweep import SCHEDULE_MAX_TRIES

    ctx = make_ctx()
    (sid,) = add_submissions(ctx.db, 1)
    grace = ctx.settings.received_grace_s
    sent_at = []
    for step in range(int(grace * 2 ** (SCHEDULE_MAX_TRIES + 1) / 30)):
        at(ctx, 30)
        report = run_sweep(ctx)
        if report.rescheduled:
            sent_at.append(step)
        if report.errored:
            break
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert len(sent_at) == SCHEDULE_MAX_TRIES and gaps == sorted(gaps) and gaps[-1] > gaps[0]
    row = status_of(ctx.db, sid)
    assert row.status == "error" and "could not be scheduled" in (row.status_reason or "")
    with ctx.db.session() as session:
        from greengrader.models import StatusEvent

        events = session.query(StatusEvent).filter_by(submission_id=sid).all()
    assert [(e.from_status, e.to_status) for e in events] == [("received", "error")]  # no event per re-send


def test_a_pod_that_never_starts_moves_the_job_to_another_region(
    make_ctx: Any, rds: redis.Redis, fixtures_dir: Path, tmp_path: Path, base_image: str
) -> None:
    """Kubernetes (fake at the client boundary): an unschedulable pod is a placement
    failure, not a grade: the job goes back to `schedule`, which avoids that region."""
    from greengrader.bridge.ingest import prepare, store_prepared
    from greengrader.grading.images import ImageBuilder
    from tests.unit.kube_fake import Behaviour
    from tests.unit.test_kubernetes_executor import WRITES_RESULTS, _executor

    ctx = make_ctx(policy="static", default_region="us-east", live=["us-west", "us-east"])
    data = (fixtures_dir / "hello-python" / "payloads" / "correct.zip").read_bytes()
    (outcome,) = store_prepared(ctx, [prepare(ctx.settings, data)])
    sid = outcome.submission_id
    assert sid is not None
    first = schedule_submission(ctx, sid)
    assert first is not None and first.region == "us-east"
    executor, _cluster = _executor(tmp_path, WRITES_RESULTS, Behaviour(kind="unschedulable"))
    assert grade_submission(ctx, sid, task_id="t-k8s", executor=executor, builder=ImageBuilder(ctx.settings),
                            dispatch=1) is None
    row = status_of(ctx.db, sid)
    assert row.status == "received" and row.avoid_regions == ["us-east"] and row.attempts == 0
    assert (row.status_reason or "").startswith("moved off us-east: the grading pod never started in us-east")
    with ctx.db.session() as session:
        from greengrader.models import Result

        assert session.query(Result).filter_by(submission_id=sid).count() == 0  # not a grade
    again = schedule_submission(ctx, sid)
    assert again is not None and again.region != "us-east"
    assert again.reason.startswith("moved off us-east")
