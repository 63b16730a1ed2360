"""The schedule decision and the beat sweep on real Postgres and Redis, with real hourly
carbon data and an injected clock (no sleeps)."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from greengrader.context import Context
from greengrader.models import Decision, Status, StatusEvent, Submission
from greengrader.scheduling.service import schedule_submission
from greengrader.scheduling.sweep import run_sweep
from tests.integration.scheduling_helpers import (
    NOW,
    Clock,
    add_submissions,
    intensities_now,
    live_workers,
    queued_grades,
    status_of,
)


def test_due_submission_goes_to_the_greenest_region_queue(
    make_ctx: Any, rds: redis.Redis, carbon_dir: Path
) -> None:
    ctx = make_ctx()
    (sid,) = add_submissions(ctx.db, 1)
    decision = schedule_submission(ctx, sid)
    assert decision is not None
    truth = intensities_now(carbon_dir, ctx)
    best = min(truth, key=lambda r: truth[r])
    assert decision.region == best and decision.fallback is None
    assert decision.candidates[best]["intensity"] == pytest.approx(truth[best])
    assert queued_grades(rds, f"region-{best}") == [sid]
    for region in ctx.regions.enabled():
        if region.name != best:
            assert rds.llen(region.queue_name) == 0
    sub = status_of(ctx.db, sid)
    assert (sub.status, sub.region, sub.not_before) == (Status.QUEUED.value, best, NOW)
    # A second delivery of the same task changes nothing and sends nothing.
    assert schedule_submission(ctx, sid) is None
    assert rds.llen(f"region-{best}") == 1


def _delayed_time(ctx: Context) -> datetime:
    """A decision time (from the real data) at which waiting up to 6 h is greener."""
    from greengrader.scheduling.service import build_placer
    from greengrader.scheduling.types import PlacementRequest

    placer = build_placer(ctx)
    for hour in range(0, 24 * 14, 5):
        t = NOW + timedelta(hours=hour)
        p = placer.place(PlacementRequest(earliest=t, runtime_s=60, max_delay_s=6 * 3600), t)
        if p.start > t:
            return t
    raise AssertionError("no delayed placement found in two weeks of data")


def test_delayed_start_stays_in_the_database_until_the_sweep_releases_it(
    make_ctx: Any, rds: redis.Redis
) -> None:
    ctx = make_ctx(policy="spatio-temporal", max_delay_s=6 * 3600)
    t0 = _delayed_time(ctx)
    ctx.clock = Clock(t0)
    live_workers(ctx)
    (sid,) = add_submissions(ctx.db, 1, at=t0)
    decision = schedule_submission(ctx, sid)
    assert decision is not None and t0 < decision.start_at <= t0 + timedelta(hours=6)
    queue = ctx.regions.get(decision.region).queue_name
    assert status_of(ctx.db, sid).status == Status.SCHEDULED.value
    assert rds.llen(queue) == 0  # no ETA message in the broker
    ctx.clock = Clock(decision.start_at - timedelta(seconds=1))
    live_workers(ctx)
    assert not run_sweep(ctx).released
    assert rds.llen(queue) == 0
    ctx.clock = Clock(decision.start_at)
    live_workers(ctx)
    assert run_sweep(ctx).released == [sid]
    assert queued_grades(rds, queue) == [sid]
    assert status_of(ctx.db, sid).status == Status.QUEUED.value
    assert not run_sweep(ctx).released  # released once only


def test_sweep_resends_schedule_for_stale_received(make_ctx: Any, rds: redis.Redis) -> None:
    ctx = make_ctx()
    stale = add_submissions(ctx.db, 2, at=NOW - timedelta(seconds=ctx.settings.received_grace_s + 1))
    add_submissions(ctx.db, 1, at=NOW)  # fresh: the bridge's own schedule is still on its way
    report = run_sweep(ctx)
    assert sorted(report.rescheduled) == sorted(stale)
    sent = [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in rds.lrange("scheduling", 0, -1)]
    assert sorted(sent) == sorted(stale)
    assert not run_sweep(ctx).rescheduled  # the claim touched them: not again within the grace


def test_sweep_recovers_lost_and_overdue_jobs_then_gives_up(make_ctx: Any, rds: redis.Redis) -> None:
    ctx = make_ctx()
    s = ctx.settings
    old = NOW - timedelta(seconds=s.grade_timeout_s + s.image_build_timeout_s + s.stuck_margin_s + 1)
    overdue = add_submissions(ctx.db, 1, status=Status.RUNNING, at=old, region="us-east", attempts=1, task_id="t1")
    lost = add_submissions(ctx.db, 1, status=Status.QUEUED, at=old, region="us-west", attempts=0, dispatch=3)
    spent = add_submissions(ctx.db, 1, status=Status.RUNNING, at=old, region="us-east", attempts=s.max_attempts)
    fresh = add_submissions(ctx.db, 1, status=Status.RUNNING, at=NOW, region="us-east", attempts=1)
    report = run_sweep(ctx)
    assert report.requeued == overdue and report.lost == lost
    assert report.errored == spent
    assert queued_grades(rds, "region-us-east") == overdue and queued_grades(rds, "region-us-west") == lost
    recovered = status_of(ctx.db, overdue[0])
    assert recovered.task_id is None and recovered.dispatch == 1 and "own limit" in (recovered.status_reason or "")
    resent = status_of(ctx.db, lost[0])
    assert resent.attempts == 0 and resent.dispatch == 4  # a lost message is not an attempt
    gave_up = status_of(ctx.db, spent[0])
    assert gave_up.status == Status.ERROR.value and "gave up" in (gave_up.status_reason or "")
    assert status_of(ctx.db, fresh[0]).status == Status.RUNNING.value
    with ctx.db.session() as session:
        events = session.query(StatusEvent).filter_by(submission_id=spent[0]).all()
        assert [(e.from_status, e.to_status) for e in events] == [("running", "error")]
    # The re-sent message now waits in its queue: later passes leave it alone.
    ctx.clock = Clock(NOW + timedelta(hours=3))
    live_workers(ctx)
    later = run_sweep(ctx)
    assert not later.lost and later.requeued == fresh  # 3 h is past `fresh`'s own limit
    assert queued_grades(rds, "region-us-west") == lost


def test_two_concurrent_sweeps_never_dispatch_a_job_twice(make_ctx: Any, rds: redis.Redis) -> None:
    ctx_a, ctx_b = make_ctx(), make_ctx()
    ids = add_submissions(ctx_a.db, 300, status=Status.SCHEDULED, at=NOW - timedelta(minutes=1),
                          region="us-west", not_before=NOW - timedelta(seconds=1))
    start = threading.Barrier(2)
    released: dict[str, list[int]] = {"a": [], "b": []}

    def sweep(ctx: Context, key: str) -> None:
        start.wait()
        while True:
            report = run_sweep(ctx, limit=7)
            if not report.released:
                return
            released[key] += report.released

    threads = [threading.Thread(target=sweep, args=(c, k)) for c, k in ((ctx_a, "a"), (ctx_b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    both = released["a"] + released["b"]
    assert sorted(both) == sorted(ids)  # every job released, none twice
    assert released["a"] and released["b"]  # both sweeps really ran concurrently
    in_queue = queued_grades(rds, "region-us-west")
    assert sorted(in_queue) == sorted(ids)


def test_cas_down_falls_back_in_process_and_records_it(make_ctx: Any, rds: redis.Redis) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = make_ctx(cas_url=f"http://127.0.0.1:{port}", cas_timeout_s=0.5, cas_retries=1)
    (sid,) = add_submissions(ctx.db, 1)
    decision = schedule_submission(ctx, sid)
    assert decision is not None
    assert decision.fallback is not None and "CAS" in decision.fallback and str(port) in decision.fallback
    assert decision.candidates  # the in-process policy's view is stored
    with ctx.db.session() as session:
        stored = session.query(Decision).filter_by(submission_id=sid).one()
        assert stored.fallback == decision.fallback
    assert queued_grades(rds, ctx.regions.get(decision.region).queue_name) == [sid]


def test_failed_enqueue_is_left_for_the_sweep(make_ctx: Any, rds: redis.Redis) -> None:
    broken = make_ctx(broker="redis://127.0.0.1:1/0")
    (sid,) = add_submissions(broken.db, 1)
    decision = schedule_submission(broken, sid)
    assert decision is not None
    sub = status_of(broken.db, sid)
    assert sub.status == Status.SCHEDULED.value and "enqueue failed" in (sub.status_reason or "")
    healthy = make_ctx()
    assert run_sweep(healthy).released == [sid]
    assert queued_grades(rds, healthy.regions.get(decision.region).queue_name) == [sid]


def test_runtime_estimate_is_the_median_of_past_runs(make_ctx: Any) -> None:
    from greengrader.models import Result
    from greengrader.scheduling.placement import runtime_estimate

    ctx = make_ctx()
    ids = add_submissions(ctx.db, 4, status=Status.GRADED)
    with ctx.db.session() as session:
        assignment_id = session.get(Submission, ids[0]).assignment_id  # type: ignore[union-attr]
        assert runtime_estimate(session, assignment_id, 42.0) == 42.0  # no history yet
    with ctx.db.transaction() as session:
        for sid, runtime in zip(ids, [10.0, 30.0, 20.0, None], strict=True):
            session.add(Result(submission_id=sid, outcome="graded", runtime_s=runtime))
    with ctx.db.session() as session:
        assert runtime_estimate(session, assignment_id, 42.0) == 20.0
    (new,) = add_submissions(ctx.db, 1)
    decision = schedule_submission(ctx, new)
    assert decision is not None and decision.runtime_estimate_s == 20.0


def test_dispatch_and_explain_commands(make_ctx: Any, rds: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                                       carbon_dir: Path) -> None:
    from click.testing import CliRunner

    from greengrader.cli import cli
    from greengrader.settings import get_settings

    ctx = make_ctx()
    ids = add_submissions(ctx.db, 2)
    # The CLI builds its context from the environment: point it at the same data and broker.
    monkeypatch.setenv("GREENGRADER_CARBON_SOURCE", "dataset")
    monkeypatch.setenv("GREENGRADER_CARBON_DATA_DIR", str(carbon_dir / "electricitymaps_greendcc"))
    monkeypatch.setenv("GREENGRADER_CARBON_CLOCK", NOW.isoformat())
    monkeypatch.setenv("GREENGRADER_HOME", str(ctx.settings.home))
    get_settings.cache_clear()
    runner = CliRunner()
    # The CLI decides on the wall clock: with no worker alive now it holds the job and says so.
    result = runner.invoke(cli, ["dispatch", str(ids[0])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "waiting for a live worker" in result.output
    held = status_of(ctx.db, ids[0])
    assert (held.status, held.region) == (Status.SCHEDULED.value, None)
    with ctx.db.transaction() as session:
        sub = session.get(Submission, ids[0])
        assert sub is not None
        sub.move_to(Status.RECEIVED, "test: back to received")
    ctx.clock = lambda: datetime.now(UTC)
    live_workers(ctx)
    ctx.clock = Clock(NOW)
    result = runner.invoke(cli, ["dispatch", str(ids[0])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    starts = [line.split(":")[0] for line in result.output.splitlines()]
    assert starts == [str(ids[0])]
    assert status_of(ctx.db, ids[0]).status in (Status.QUEUED.value, Status.SCHEDULED.value)
    assert status_of(ctx.db, ids[1]).status == Status.RECEIVED.value
    result = runner.invoke(cli, ["explain", str(ids[0]), "--json"], catch_exceptions=False)
    doc = json.loads(result.output)
    assert doc["submission"] == ids[0] and doc["region"] in doc["candidates"]
    assert set(doc["candidates"]) == {r.name for r in ctx.regions.enabled()}
    result = runner.invoke(cli, ["explain", str(ids[0])], catch_exceptions=False)
    assert "why:" in result.output and doc["region"] in result.output
    result = runner.invoke(cli, ["explain", str(ids[1])])
    assert result.exit_code != 0 and "no scheduling decision" in str(result.exception)
