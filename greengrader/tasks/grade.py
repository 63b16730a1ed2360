"""``greengrader.grade``: run one submission's autograder on a region worker."""

from __future__ import annotations

from typing import Any

from greengrader.celery_app import app
from greengrader.context import current_context


@app.task(name="greengrader.grade", bind=True, acks_late=True)
def grade(self: Any, submission_id: int) -> None:
    from greengrader.grading import grade_submission

    grade_submission(current_context(), submission_id, task_id=self.request.id)
