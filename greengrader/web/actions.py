"""The dashboard's two writes, both audited: regrade a submission, export its payload."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

from sqlalchemy.orm import undefer

from greengrader.bridge.ingest import enqueue_schedule
from greengrader.context import Context
from greengrader.errors import NotFound
from greengrader.models import Status, Submission, SubmissionPayload
from greengrader.models.status import TERMINAL
from greengrader.web import audit
from greengrader.web.accounts import Principal
from greengrader.web.scope import Scope


@dataclass(frozen=True)
class RegradeOutcome:
    submission_id: int
    requested: bool  # False: the submission was not finished, so nothing changed
    enqueued: bool  # False: the broker was unreachable; the sweep schedules it later
    status: str


def regrade(ctx: Context, scope: Scope, principal: Principal, submission_id: int, client_ip: str | None) -> RegradeOutcome:
    """Send a finished submission back to ``received`` and on to the scheduler."""
    with ctx.db.transaction() as session:
        sub = session.get(Submission, submission_id, with_for_update=True)
        if sub is None or not scope.allows_assignment(sub.assignment_id):
            raise NotFound(f"submission {submission_id} not found")
        previous = sub.status
        requested = Status(previous) in TERMINAL
        if requested:
            sub.move_to(Status.RECEIVED, f"regrade requested by {principal.email}", now=ctx.now())
            if sub.assignment.build_status == "broken":
                sub.assignment.build_status = "none"  # let the build run again
        audit.record(session, "regrade", ctx.now(), user_email=principal.email,
                     target=f"submission:{submission_id}", client_ip=client_ip,
                     detail={"requested": requested, "from": previous})
        status = sub.status
    enqueued = enqueue_schedule(ctx, submission_id) if requested else False
    return RegradeOutcome(submission_id, requested, enqueued, status)


def export_payload(
    ctx: Context, scope: Scope, principal: Principal, submission_id: int, client_ip: str | None
) -> tuple[str, bytes]:
    """The stored (pseudonymised) payload zip plus ``greengrader.json``; (filename, bytes)."""
    with ctx.db.transaction() as session:
        sub = session.get(Submission, submission_id)
        if sub is None or not scope.allows_assignment(sub.assignment_id):
            raise NotFound(f"submission {submission_id} not found")
        payload = session.get(SubmissionPayload, submission_id, options=[undefer(SubmissionPayload.data)])
        if payload is None:
            raise NotFound(f"submission {submission_id} has no stored payload")
        summary = {
            "id": sub.id, "gradescope_id": sub.gradescope_id, "assignment_id": sub.assignment_id,
            "status": sub.status, "sha256": sub.sha256, "gradescope_score": sub.gradescope_score,
            "received_at": sub.received_at.isoformat(),
        }
        data = payload.data
        audit.record(session, "export", ctx.now(), user_email=principal.email,
                     target=f"submission:{submission_id}", client_ip=client_ip, detail={"bytes": len(data)})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("payload.zip", data)
        zf.writestr("greengrader.json", json.dumps(summary, indent=2))
    return f"submission-{submission_id}.zip", out.getvalue()
