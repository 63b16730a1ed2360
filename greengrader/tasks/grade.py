"""``greengrader.grade``: run one submission's autograder on a region worker."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready

from greengrader.celery_app import app
from greengrader.context import current_context
from greengrader.tasks.names import GRADE_TASK

log = logging.getLogger(__name__)


@app.task(name=GRADE_TASK, bind=True, acks_late=True)
def grade(self: Any, submission_id: int, dispatch: int | None = None) -> None:
    from greengrader.grading.service import grade_submission

    grade_submission(
        current_context(), submission_id, task_id=self.request.id, worker=self.request.hostname,
        dispatch=dispatch,
    )


@worker_ready.connect
def _remove_leftovers(sender: Any = None, **_kwargs: Any) -> None:
    """A worker SIGKILLed mid-job leaves its container behind: its successor (same node
    name) removes it at start, in the background so startup is not delayed."""
    hostname = str(getattr(sender, "hostname", "") or "")
    if hostname:
        threading.Thread(target=_janitor, args=(hostname,), name="greengrader-janitor", daemon=True).start()


def _janitor(hostname: str) -> None:
    """At start, everything an earlier worker of this name left; then, every heartbeat
    interval, containers of pool processes cancelled or killed mid-job (SIGTERM when the
    broker connection drops, SIGKILL, OOM) that never reached their own cleanup."""
    from greengrader.grading.executors import get_executor

    try:
        settings = current_context().settings
        executor = get_executor(settings.executor, settings, worker=hostname)
    except Exception:  # no Docker client library or cluster config: nothing to clean
        log.debug("no executor for the janitor", exc_info=True)
        return
    try:
        removed = executor.janitor()
        if removed:
            log.info("removed %d job containers left by an earlier %s", removed, hostname)
    except Exception:  # the daemon may be down or busy: the periodic pass below retries
        log.warning("janitor at start failed; retrying every %ss", settings.worker_heartbeat_s, exc_info=True)
    remove_exited = getattr(executor, "remove_exited", None)
    while remove_exited is not None:
        time.sleep(settings.worker_heartbeat_s)
        try:
            if removed := remove_exited():
                log.warning("removed %d job containers whose pool process died mid-job", removed)
        except Exception:  # the daemon may be restarting: try again next interval
            log.debug("periodic container cleanup failed", exc_info=True)
