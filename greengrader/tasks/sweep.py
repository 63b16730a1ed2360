"""``greengrader.sweep`` (beat): release due jobs, re-enqueue lost ones, recover stuck ones."""

from __future__ import annotations

from greengrader.celery_app import app
from greengrader.context import current_context
from greengrader.tasks.names import SWEEP_TASK


@app.task(name=SWEEP_TASK, acks_late=True, ignore_result=True)
def sweep() -> None:
    from greengrader.scheduling.sweep import run_sweep

    run_sweep(current_context())
