"""``greengrader.schedule``: decide region and start time for one submission."""

from __future__ import annotations

from greengrader.celery_app import app
from greengrader.context import current_context
from greengrader.tasks.names import SCHEDULE_TASK


@app.task(name=SCHEDULE_TASK, acks_late=True)
def schedule(submission_id: int) -> None:
    from greengrader.errors import SchedulingError
    from greengrader.scheduling.service import note_unschedulable, schedule_submission

    ctx = current_context()
    try:
        schedule_submission(ctx, submission_id)
    except SchedulingError as exc:  # stays `received`: the sweep retries with backoff
        note_unschedulable(ctx, submission_id, str(exc))
        raise
