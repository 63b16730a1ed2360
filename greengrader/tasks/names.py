"""Names of the Celery tasks that are sent by name, from processes that must not import
the Celery app or the task modules (the bridge and its worker processes among them).

Importing this module imports nothing else: keep it that way.
"""

from __future__ import annotations

SCHEDULE_TASK = "greengrader.schedule"
GRADE_TASK = "greengrader.grade"
SWEEP_TASK = "greengrader.sweep"
