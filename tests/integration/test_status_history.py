"""Status history on the job's hot path (real Postgres): a transition adds its event without
loading the history, and the history still reads back whole and in order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from greengrader.db import Database
from greengrader.models import Status, Submission
from tests.integration.scheduling_helpers import add_submissions


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        seen.append(" ".join(sql.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_transition_does_not_load_the_history_and_the_history_stays_whole(database: Database) -> None:
    (sid,) = add_submissions(database, 1)
    with database.transaction() as session:  # a job's earlier life: three events
        sub = session.get(Submission, sid)
        assert sub is not None
        for target in (Status.SCHEDULED, Status.QUEUED, Status.RUNNING):
            sub.move_to(target, f"to {target.value}")
    with statements(database) as seen, database.transaction() as session:  # as the worker's store does
        sub = session.get(Submission, sid)
        assert sub is not None
        sub.move_to(Status.GRADED, "graded")
    loads = [sql for sql in seen if sql.startswith("SELECT") and "FROM status_event" in sql]
    assert loads == [], loads
    assert sum(sql.startswith("INSERT INTO status_event") for sql in seen) == 1
    with database.session() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert [(e.from_status, e.to_status) for e in sub.events] == [
            ("received", "scheduled"), ("scheduled", "queued"), ("queued", "running"), ("running", "graded")]
    with database.transaction() as session:  # read after a transition in the same session: included
        sub = session.get(Submission, sid)
        assert sub is not None
        sub.move_to(Status.RECEIVED, "regrade")
        assert [e.to_status for e in sub.events][-2:] == ["graded", "received"]
