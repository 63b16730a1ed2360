"""grade_submission end to end on real Postgres and Docker: shared hello-python payloads,
the shipped examples (including a C autograder whose setup.sh apt- and pip-installs),
idempotency, reruns and broken autograders."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from greengrader.bridge.ingest import prepare, store_prepared
from greengrader.context import Context
from greengrader.demo.examples import example_payload
from greengrader.grading.executors.docker import LABEL_JOB, LABEL_WORKER, DockerExecutor
from greengrader.grading.service import grade_submission
from greengrader.models import Assignment, Result, Status, StatusEvent, Submission
from tests import payloads

pytestmark = pytest.mark.docker


@pytest.fixture
def executor(context: Context, docker_client: Any, base_image: str) -> Iterator[DockerExecutor]:
    """A Docker executor with its own worker label, so only this test's containers count."""
    executor = DockerExecutor(context.settings, client=docker_client, worker=f"test-{uuid.uuid4().hex[:8]}")
    yield executor
    executor.drain()  # removal runs off the critical path, in the background
    mine = {"label": [LABEL_JOB, f"{LABEL_WORKER}={executor.worker}"]}
    assert docker_client.containers.list(all=True, filters=mine) == [], "a grading container was left behind"


def grade(ctx: Context, executor: DockerExecutor, submission_id: int, task_id: str | None = None) -> Result | None:
    return grade_submission(ctx, submission_id, task_id=task_id, executor=executor)


def ingest(ctx: Context, data: bytes, **limits: Any) -> int:
    outcome = store_prepared(ctx, [prepare(ctx.settings, data)])[0]
    assert outcome.status == "received", outcome
    assert outcome.submission_id is not None
    if limits:
        with ctx.db.transaction() as session:
            sub = session.get(Submission, outcome.submission_id)
            assert sub is not None
            sub.assignment.limits = limits
    return outcome.submission_id


def payload(fixtures_dir: Path, name: str) -> bytes:
    return (fixtures_dir / "hello-python" / "payloads" / name).read_bytes()


def status_of(ctx: Context, submission_id: int) -> tuple[str, str | None]:
    with ctx.db.session() as session:
        sub = session.get(Submission, submission_id)
        assert sub is not None
        return sub.status, sub.status_reason


def test_correct_payload_scores_10_of_10_and_agrees_with_gradescope(context: Context, executor: DockerExecutor, fixtures_dir: Path) -> None:
    sid = ingest(context, payload(fixtures_dir, "correct.zip"))
    result = grade(context, executor, sid, task_id="task-1")
    assert result is not None
    assert (result.outcome, result.score, result.max_score, result.agrees) == ("graded", 10.0, 10.0, True)
    assert len(result.tests or []) == 5 and all(t["status"] == "passed" for t in result.tests or [])
    assert 0 < (result.runtime_s or 0) < 10 and (result.turnaround_s or 0) >= result.runtime_s
    assert result.cpu_s is not None and result.cpu_s > 0
    assert status_of(context, sid)[0] == "graded"
    with context.db.session() as session:
        history = session.scalars(select(StatusEvent.to_status).where(StatusEvent.submission_id == sid).order_by(StatusEvent.id)).all()
        assert history[-4:] == ["scheduled", "queued", "running", "graded"]
        assignment = session.scalars(select(Assignment)).one()
        assert assignment.build_status == "ready"
        assert assignment.image_tag and assignment.image_tag.startswith("greengrader/assignment:")


def test_redelivered_grade_of_a_graded_submission_does_nothing(context: Context, executor: DockerExecutor, fixtures_dir: Path) -> None:
    sid = ingest(context, payload(fixtures_dir, "correct.zip"))
    first = grade(context, executor, sid, task_id="task-1")
    assert first is not None
    assert grade(context, executor, sid, task_id="task-1") is None
    assert grade(context, executor, sid, task_id="task-2") is None
    with context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 1
        assert session.scalars(select(Result)).one().id == first.id


def test_rerun_after_a_crash_replaces_the_partial_result(context: Context, executor: DockerExecutor, fixtures_dir: Path) -> None:
    sid = ingest(context, payload(fixtures_dir, "partial.zip"))
    with context.db.transaction() as session:  # a worker died after claiming and half-writing
        sub = session.get(Submission, sid)
        assert sub is not None
        for status in (Status.SCHEDULED, Status.QUEUED, Status.RUNNING):
            sub.move_to(status)
        sub.task_id = "task-crashed"
        session.add(Result(submission_id=sid, outcome="error", message="partial"))
    result = grade(context, executor, sid, task_id="task-crashed")
    assert result is not None and (result.outcome, result.score, result.agrees) == ("graded", 6.0, True)
    with context.db.session() as session:
        rows = session.scalars(select(Result)).all()
        assert [(r.outcome, r.score) for r in rows] == [("graded", 6.0)]


def test_running_submission_owned_by_another_task_is_left_alone(context: Context, executor: DockerExecutor, fixtures_dir: Path) -> None:
    sid = ingest(context, payload(fixtures_dir, "correct.zip"))
    with context.db.transaction() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        for status in (Status.SCHEDULED, Status.QUEUED, Status.RUNNING):
            sub.move_to(status, now=context.now())
        sub.task_id = "task-owner"
    assert grade(context, executor, sid, task_id="task-intruder") is None
    assert status_of(context, sid)[0] == "running"


def test_syntax_error_scores_zero_with_its_output(context: Context, executor: DockerExecutor, fixtures_dir: Path) -> None:
    sid = ingest(context, payload(fixtures_dir, "syntax_error.zip"))
    result = grade(context, executor, sid)
    assert result is not None and (result.outcome, result.score, result.agrees) == ("graded", 0.0, True)
    assert all("SyntaxError" in t["output"] for t in result.tests or [])


def test_infinite_loop_times_out_within_the_limit(context: Context, executor: DockerExecutor, fixtures_dir: Path) -> None:
    sid = ingest(context, payload(fixtures_dir, "infinite_loop.zip"), timeout_s=3)
    result = grade(context, executor, sid)
    assert result is not None
    assert result.outcome == "timeout" and "did not finish within 3 s" in (result.message or "")
    assert 2.5 <= (result.runtime_s or 0) <= 6
    assert (result.score, result.agrees) == (0.0, True)  # Gradescope also gave 0 (timed out)
    assert status_of(context, sid) == ("failed", result.message)


@pytest.mark.parametrize("name", ["correct_flat_layout.zip", "correct_full_metadata.zip"])
def test_flat_layout_and_full_metadata_grade_the_same(context: Context, executor: DockerExecutor, fixtures_dir: Path, name: str) -> None:
    sid = ingest(context, payload(fixtures_dir, name))
    result = grade(context, executor, sid)
    assert result is not None and (result.outcome, result.score, result.agrees) == ("graded", 10.0, True)


def test_python_stats_example_grades_every_case_as_gradescope_did(context: Context, executor: DockerExecutor) -> None:
    expected = {"correct": ("graded", 10.0), "partial": ("graded", 7.5),
                "syntax_error": ("graded", 0.0), "infinite_loop": ("timeout", 0.0)}
    for number, (case, (outcome, score)) in enumerate(sorted(expected.items())):
        sid = ingest(context, example_payload("python-stats", case, 810000 + number), timeout_s=3)
        result = grade(context, executor, sid)
        assert result is not None
        assert (case, result.outcome, result.score, result.agrees) == (case, outcome, score, True)


def test_c_make_example_builds_with_apt_and_pip_and_compiles_with_make(context: Context, executor: DockerExecutor) -> None:
    expected = {"correct": 10.0, "wrong_factorial": 5.0, "compile_error": 0.0}
    for number, (case, score) in enumerate(sorted(expected.items())):
        sid = ingest(context, example_payload("c-make", case, 820000 + number))
        result = grade(context, executor, sid)
        assert result is not None, case
        assert (case, result.outcome, result.score, result.max_score, result.agrees) == (case, "graded", score, 10.0, True)
        if case == "compile_error":
            assert all("make failed" in t["output"] for t in result.tests or [])


BROKEN_SETUP = "#!/bin/bash\necho installing things\necho 'E: Unable to locate package nonexistent' >&2\nexit 3\n"


def broken_payload(submission_id: int, setup: str = BROKEN_SETUP, assignment: int = 66601) -> bytes:
    buf = io.BytesIO()
    meta = {"id": submission_id, "assignment": {"id": assignment, "course_id": 1, "title": "Broken", "total_points": "5"},
            "users": [{"email": "s@example.edu", "name": "S", "sid": "1"}]}
    with zipfile.ZipFile(buf, "w") as zf:
        ag = "gradescope_data/autograder/"
        zf.writestr(ag + "source/setup.sh", setup)
        zf.writestr(ag + "source/run_autograder", "#!/bin/sh\necho never\n")
        zf.writestr(ag + "submission/a.py", "print(1)\n")
        zf.writestr(ag + "submission_metadata.json", json.dumps(meta))
        zf.writestr(ag + "results/results.json", json.dumps({"score": 5}))
    return buf.getvalue()


def test_failing_setup_marks_the_assignment_broken_and_its_submissions_error(context: Context, executor: DockerExecutor) -> None:
    first = ingest(context, broken_payload(830001))
    second = ingest(context, broken_payload(830002))
    result = grade(context, executor, first)
    assert result is not None and result.outcome == "setup_error"
    status, reason = status_of(context, first)
    assert status == "error" and reason is not None and "autograder setup failed" in reason
    with context.db.session() as session:
        assignment = session.scalars(select(Assignment).where(Assignment.gradescope_id == 66601)).one()
        assert assignment.build_status == "broken"
        assert "Unable to locate package nonexistent" in (assignment.build_log or "")
    again = grade(context, executor, second)  # no rebuild: the version is known broken
    assert again is not None and again.outcome == "setup_error"
    assert "failed earlier" in (status_of(context, second)[1] or "")


def test_cli_run_local_and_results(context: Context, executor: DockerExecutor, fixtures_dir: Path) -> None:
    correct = fixtures_dir / "hello-python" / "payloads" / "partial.zip"
    out = subprocess.run([sys.executable, "-m", "greengrader", "run-local", "--json", str(correct)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["outcome"], summary["score"], summary["gradescope_score"], summary["agrees"]) == ("graded", 6.0, 6.0, True)
    plain = subprocess.run([sys.executable, "-m", "greengrader", "run-local", str(correct)],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert "[dim]" not in plain.stdout  # markup is rendered, never printed literally
    sid = ingest(context, payload(fixtures_dir, "correct.zip"))
    grade(context, executor, sid)
    with context.db.transaction() as session:  # pretend Gradescope said otherwise
        sub = session.get(Submission, sid)
        assert sub is not None
        sub.gradescope_score = 9.0
        session.scalars(select(Result)).one().agreement = "differs"
    env = {**os.environ, "COLUMNS": "200"}
    listed = subprocess.run([sys.executable, "-m", "greengrader", "results", "--disagreements"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "900101" in listed.stdout and "10.00" in listed.stdout and "9.00" in listed.stdout


def test_a_hanging_setup_is_stopped_at_its_bound_and_marks_the_version_broken(
    context: Context, executor: DockerExecutor
) -> None:
    import time

    from greengrader.grading.images import ImageBuilder

    settings = context.settings.model_copy(update={"image_build_timeout_s": 10})
    hang = f"#!/bin/bash\necho fetching the toolchain {uuid.uuid4().hex}\nsleep 600\n"
    sid = ingest(context, broken_payload(830101, setup=hang, assignment=66602))
    started = time.monotonic()
    result = grade_submission(context, sid, task_id="t-hang", executor=executor, builder=ImageBuilder(settings))
    assert time.monotonic() - started < 60
    assert result is not None and result.outcome == "setup_error"
    status, reason = status_of(context, sid)
    assert status == "error" and "did not finish within 10 s" in (reason or "")
    with context.db.session() as session:
        assignment = session.scalars(select(Assignment).where(Assignment.gradescope_id == 66602)).one()
        assert assignment.build_status == "broken" and "fetching the toolchain" in (assignment.build_log or "")


def test_an_image_pruned_under_a_job_is_retried_at_once_not_graded(
    context: Context, executor: DockerExecutor, fixtures_dir: Path, docker_client: Any
) -> None:
    """An infrastructure failure mid-grade (here the image vanished after the builder
    checked it) is never a result: the job is sent again at once and graded by that run."""
    import redis

    from greengrader.grading.images import ImageBuilder

    builder = ImageBuilder(context.settings, client=docker_client)
    marker = {"marker.txt": uuid.uuid4().hex.encode()}  # an image of this test's own
    data = payloads.build(payloads.metadata(830201), source={**payloads.SOURCE, **marker})
    sid = ingest(context, data)
    first = grade_submission(context, sid, task_id="t-one", executor=executor, builder=builder)
    assert first is not None
    with context.db.transaction() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        sub.move_to(Status.RECEIVED, "test: grade again")
        tag = sub.assignment.image_tag
    assert tag is not None and builder.exists(tag)
    docker_client.images.remove(tag, force=True)  # the builder still believes it exists
    assert grade_submission(context, sid, task_id="t-two", executor=executor, builder=builder) is None
    status, reason = status_of(context, sid)
    assert status == "queued" and "infrastructure error" in (reason or "") and "retrying now" in (reason or "")
    with context.db.session() as session:
        row = session.get(Submission, sid)
        assert row is not None and row.attempts == 0 and row.infra_failures == 1
        kept = session.scalars(select(Result.id).where(Result.submission_id == sid)).all()
        assert kept == [first.id]  # the failed run stored nothing (the earlier grade stands)
    queue = context.regions.get(row.region or context.settings.default_region).queue_name
    sent = [json.loads(m) for m in redis.Redis.from_url(context.settings.effective_broker_url).lrange(queue, 0, -1)]
    assert [m["headers"]["task"] for m in sent] == ["greengrader.grade"]
    again = grade_submission(context, sid, task_id="t-three", executor=executor, builder=builder, dispatch=row.dispatch)
    assert again is not None and again.outcome == first.outcome  # a real run of the autograder
    assert builder.exists(tag)
