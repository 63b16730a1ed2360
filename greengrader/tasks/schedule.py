"""``greengrader.schedule``: decide region and start time for one submission."""

from __future__ import annotations

from greengrader.celery_app import app
from greengrader.context import current_context


@app.task(name="greengrader.schedule", acks_late=True)
def schedule(submission_id: int) -> None:
    from greengrader.scheduling.service import schedule_submission

    schedule_submission(current_context(), submission_id)
