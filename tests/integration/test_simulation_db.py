"""Traces and report tables from real rows in Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greengrader.db import Database
from greengrader.models import Assignment, Course, Result, Submission
from greengrader.reports.database import collect
from greengrader.simulation.traces import from_database

T0 = datetime(2023, 5, 30, 1, 30, tzinfo=UTC)  # 18:30 in Los Angeles


def seed(db: Database) -> None:
    with db.transaction() as s:
        course = Course(gradescope_id=1, name="CSE 124")
        a = Assignment(course=course, gradescope_id=10, title="Project 4", version="v1")
        s.add_all([course, a])
        s.flush()
        due = {"assignment": {"due_date": "2023-06-02T23:59:00-07:00"}}
        for i in range(4):
            sub = Submission(gradescope_id=100 + i, assignment_id=a.id, sha256=f"{i:064d}", size=1,
                             metadata_json=due, received_at=T0 + timedelta(hours=i))
            s.add(sub)
            s.flush()
            if i < 3:
                s.add(Result(submission_id=sub.id, region="us-west", outcome="graded", runtime_s=20.0 + i,
                             turnaround_s=70.0 + i, energy_kwh=1e-4, carbon_g=0.02, agrees=i != 1,
                             agreement=("agrees", "differs", "nondeterministic")[i]))


def test_trace_from_database(database: Database) -> None:
    seed(database)
    trace = from_database(database, default_runtime_s=60.0)
    assert len(trace) == 4
    assert trace.arrival_s[0] == pytest.approx(T0.timestamp())
    assert trace.runtime_s.tolist() == [20.0, 21.0, 22.0, 60.0]  # the ungraded one: default
    assert trace.assignments == ("Project 4",)
    assert trace.deadline_s[0] == pytest.approx(datetime(2023, 6, 3, 6, 59, tzinfo=UTC).timestamp())
    later = from_database(database, start=T0 + timedelta(minutes=90))
    assert len(later) == 2


def test_report_tables_from_database(database: Database) -> None:
    seed(database)
    stats = collect(database, "America/Los_Angeles")
    assert stats.submissions == 4
    assert stats.per_date == {"2023-05-29": 4}
    assert stats.per_hour[18:22] == [1, 1, 1, 1]
    assert stats.agreement == {"agrees": 1, "differs": 1, "nondeterministic": 1, "unknown": 0}
    assert stats.runtime_s["p50"] == pytest.approx(21.0)
    assert stats.overhead_s["mean"] == pytest.approx(50.0)
    assert stats.by_assignment_region == [("Project 4", "us-west", 3, pytest.approx(3e-4), pytest.approx(0.06))]
