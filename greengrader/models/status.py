"""The submission state machine. Every status change goes through :func:`transition`.

received -> scheduled (region, not_before) -> queued -> running -> graded | failed | error
Rejected payloads never become submissions: they are Quarantine rows.
A job may go back (queued/running -> scheduled or queued) when it is retried or recovered,
back to ``received`` (scheduled/queued/running -> received) when its region died or could
not start it and it is placed again, and an operator may regrade a finished one (graded/failed/error -> received).
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    GRADED = "graded"
    FAILED = "failed"
    ERROR = "error"


TERMINAL = frozenset({Status.GRADED, Status.FAILED, Status.ERROR})

ALLOWED: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset({Status.SCHEDULED, Status.ERROR}),
    Status.SCHEDULED: frozenset({Status.QUEUED, Status.SCHEDULED, Status.RECEIVED, Status.ERROR}),
    Status.QUEUED: frozenset({Status.RUNNING, Status.SCHEDULED, Status.QUEUED, Status.RECEIVED, Status.ERROR}),
    Status.RUNNING: frozenset(
        {Status.GRADED, Status.FAILED, Status.ERROR, Status.SCHEDULED, Status.QUEUED, Status.RECEIVED}
    ),
    Status.GRADED: frozenset({Status.RECEIVED}),
    Status.FAILED: frozenset({Status.RECEIVED}),
    Status.ERROR: frozenset({Status.RECEIVED}),
}


def can_transition(current: Status | str, target: Status | str) -> bool:
    return Status(target) in ALLOWED[Status(current)]
