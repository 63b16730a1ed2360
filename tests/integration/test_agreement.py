"""Agreement with Gradescope judged test by test, end to end (Postgres, Docker, gVisor).

A randomised test (like Gradescope's python sample) is found nondeterministic from
evidence (re-runs of the same payload) and is not a disagreement; a test that fails only
because the package setup.sh installs is missing is a real difference, listed by
``results --disagreements`` with both outcomes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from greengrader.bridge.ingest import prepare, store_prepared
from greengrader.context import Context
from greengrader.grading.executors.docker import DockerExecutor
from greengrader.grading.service import grade_submission
from greengrader.models import Result, TestEvidence
from tests.agreement_fixtures import ADD_TEST, PACKAGE_TEST, RANDOM_TEST, payload

pytestmark = pytest.mark.docker


@pytest.fixture
def executor(context: Context, docker_client: Any, base_image: str) -> Iterator[DockerExecutor]:
    executor = DockerExecutor(context.settings, client=docker_client, worker=f"test-{uuid.uuid4().hex[:8]}")
    yield executor
    executor.drain()


def grade(ctx: Context, executor: DockerExecutor, data: bytes) -> Result:
    outcome = store_prepared(ctx, [prepare(ctx.settings, data)])[0]
    assert outcome.submission_id is not None, outcome
    result = grade_submission(ctx, outcome.submission_id, executor=executor)
    assert result is not None and result.outcome == "graded", result and result.message
    with ctx.db.session() as session:
        stored = session.scalars(select(Result).where(Result.submission_id == outcome.submission_id)).one()
        session.expunge(stored)
    return stored


def verdicts(result: Result) -> dict[str, str]:
    return {t["key"]: t["verdict"] for t in (result.comparison or {})["tests"]}


def evidence(ctx: Context) -> dict[str, bool]:
    with ctx.db.session() as session:
        return {e.test_key: e.nondeterministic for e in session.scalars(select(TestEvidence))}


def disagreements() -> str:
    listed = subprocess.run([sys.executable, "-m", "greengrader", "results", "--disagreements"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "250"})
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_randomised_test_is_nondeterministic_from_evidence_not_a_disagreement(
    context: Context, executor: DockerExecutor
) -> None:
    first = grade(context, executor, payload(810001, random_score=4.2))
    assert first.sandbox == "gvisor"  # the default where the daemon has runsc
    assert first.agreement == "nondeterministic" and first.agrees is True
    assert verdicts(first) == {ADD_TEST: "same", PACKAGE_TEST: "same", RANDOM_TEST: "nondeterministic"}
    assert first.comparison is not None and first.comparison["regrades"] == 2  # the bounded re-runs
    assert first.comparison["leaderboard_agrees"] is True
    assert evidence(context) == {RANDOM_TEST: True}
    # Known now for this assignment version: no more re-runs, same classification.
    second = grade(context, executor, payload(810002, random_score=3.3))
    assert second.agreement == "nondeterministic" and second.comparison is not None
    assert second.comparison["regrades"] == 0
    assert "810001" not in disagreements() and "810002" not in disagreements()


def test_missing_package_is_a_real_difference_listed_with_both_outcomes(
    context: Context, executor: DockerExecutor
) -> None:
    result = grade(context, executor, payload(820001, random_score=4.2, with_package=False, assignment_id=5151))
    assert result.agreement == "differs" and result.agrees is False
    assert verdicts(result) == {ADD_TEST: "same", PACKAGE_TEST: "differs", RANDOM_TEST: "nondeterministic"}
    package = next(t for t in (result.comparison or {})["tests"] if t["key"] == PACKAGE_TEST)
    assert package["ours"]["status"] == "failed" and package["gradescope"]["status"] == "passed"
    # the re-runs showed the package test stable and the random one varying
    assert evidence(context) == {PACKAGE_TEST: False, RANDOM_TEST: True}
    listed = disagreements()
    assert "820001" in listed and PACKAGE_TEST in listed and "ours failed 0/1" in listed
    assert "Gradescope passed 1/1" in listed and "1.3 random" not in listed
    # a later submission: both tests have evidence, so no re-runs; still a real difference
    again = grade(context, executor, payload(820002, random_score=1.0, with_package=False, assignment_id=5151))
    assert again.agreement == "differs" and again.comparison is not None and again.comparison["regrades"] == 0


def test_identical_submissions_that_score_differently_are_evidence_too(
    context: Context, executor: DockerExecutor
) -> None:
    context.settings.agreement_regrades = 0  # only identical submissions can tell
    first = grade(context, executor, payload(830001, random_score=4.2, assignment_id=5152))
    assert first.agreement == "differs"  # no evidence yet
    second = grade(context, executor, payload(830002, random_score=2.2, assignment_id=5152))
    assert second.agreement == "nondeterministic", verdicts(second)
    assert RANDOM_TEST in evidence(context) and evidence(context)[RANDOM_TEST] is True
    # the first one is reclassified by the new evidence: no noise left in --disagreements
    with context.db.session() as session:
        assert session.get(Result, first.id).agreement == "nondeterministic"  # type: ignore[union-attr]
    assert "830001" not in disagreements()


def test_results_and_explain_show_the_sandbox_and_the_agreement(context: Context, executor: DockerExecutor) -> None:
    import json

    from greengrader.models import Decision, utcnow

    result = grade(context, executor, payload(840001, random_score=4.2, assignment_id=5153))
    with context.db.transaction() as session:
        session.add(Decision(submission_id=result.submission_id, policy="fifo", region="us-west",
                             start_at=utcnow(), candidates={}))
    env = {**os.environ, "COLUMNS": "250"}
    listed = subprocess.run([sys.executable, "-m", "greengrader", "results"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "840001" in line)
    assert "gvisor" in row and "nondeterministic" in row
    explained = subprocess.run([sys.executable, "-m", "greengrader", "explain", str(result.submission_id), "--json"],
                               capture_output=True, text=True, timeout=60, env=env)
    assert explained.returncode == 0, explained.stderr
    doc = json.loads(explained.stdout)
    assert (doc["sandbox"], doc["agreement"]) == ("gvisor", "nondeterministic")
