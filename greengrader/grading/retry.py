"""When the infrastructure, not the job, failed: try again, or place the job elsewhere.

Neither is an attempt of the job (the claim is undone) and both are bounded by
:data:`INFRA_RETRY_MAX` consecutive failures, after which the job becomes ``error``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from greengrader.context import Context
from greengrader.errors import GreengraderError
from greengrader.grading.claim import owned
from greengrader.models import Status, Submission
from greengrader.ops.metrics import GRADES

log = logging.getLogger(__name__)

INFRA_RETRY_MAX = 10  # consecutive infrastructure failures before a job becomes `error`
INFRA_BACKOFF_S = (0.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)


def retry(ctx: Context, submission_id: int, task_id: str, reason: str) -> None:
    """An infrastructure failure (Docker down or racing, image pruned) is not the
    student's result and not the job's fault: the first is sent again at once, later ones
    wait with backoff (held ``scheduled``, released by the sweep); after
    ``INFRA_RETRY_MAX`` in a row the job becomes ``error`` with the reason."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        sub = owned(session, submission_id, task_id)
        if sub is None:
            return
        region = sub.region or ctx.settings.default_region
        if _release(sub, reason, region, now):
            return
        wait = INFRA_BACKOFF_S[min(sub.infra_failures - 1, len(INFRA_BACKOFF_S) - 1)]
        if wait > 0:
            sub.not_before = now + timedelta(seconds=wait)
            sub.move_to(Status.SCHEDULED, f"{reason}; retrying in {wait:.0f} s"[:2000], now=now)
            return
        sub.move_to(Status.QUEUED, f"{reason}; retrying now"[:2000], now=now)
        sub.dispatch += 1
        dispatch = sub.dispatch
    from greengrader.scheduling.service import enqueue_grade

    enqueue_grade(ctx, submission_id, region, dispatch)


def place_elsewhere(ctx: Context, submission_id: int, task_id: str, region: str, reason: str) -> None:
    """The region could not start the job: back to ``schedule``, avoiding that region. Not
    an attempt; bounded like other infrastructure failures."""
    from greengrader.scheduling.service import MOVED_OFF, send_schedule

    now = ctx.now()
    with ctx.db.transaction() as session:
        sub = owned(session, submission_id, task_id)
        if sub is None:
            return
        if _release(sub, reason, region, now):
            return
        sub.avoid_regions = sorted({*(sub.avoid_regions or []), region})
        sub.move_to(Status.RECEIVED, f"{MOVED_OFF} {region}: {reason}"[:2000], now=now)
    try:
        send_schedule(ctx, submission_id)
    except GreengraderError as exc:  # the row is `received`: the sweep re-sends it
        log.warning("%s; leaving it for the sweep", exc)



def _release(sub: Submission, reason: str, region: str, now: datetime) -> bool:
    """Undo the claim (it did not try the job) and count the failure; True when that was
    the last one allowed and the job is now ``error``."""
    sub.task_id, sub.worker = None, None
    sub.attempts -= 1
    sub.infra_failures += 1
    if sub.infra_failures < INFRA_RETRY_MAX:
        return False
    sub.move_to(Status.ERROR, f"{reason} (gave up after {sub.infra_failures} tries)"[:2000], now=now)
    GRADES.labels("error", region).inc()
    return True
