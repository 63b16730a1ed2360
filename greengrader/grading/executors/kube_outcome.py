"""What a grading Job and its pod say about the run, and the outcome they add up to.

Only Kubernetes can evict a pod, fail to deliver the submission (the initContainer) or
never start it; those are decided here. A run that did start is classified like any other
(``outcome.classify``): the Job's deadline or the wrapper's ``timeout`` is a timeout, and
results.json, an OOM kill and the exit code decide the rest.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from greengrader.grading.executors.base import Limits
from greengrader.grading.executors.kube_log import LogReport
from greengrader.grading.executors.kube_manifests import MAIN
from greengrader.grading.executors.outcome import (
    MISSING,
    RunEnd,
    Verdict,
    classify,
    timeout_verdict,
)

TIMEOUT_RC = 124  # coreutils `timeout` exit status when the limit fired


def pod_verdict(
    limits: Limits,
    finished: Any,
    pod_status: Any,
    init: Any,
    terminated: Any,
    report: LogReport | None,
) -> Verdict:
    """Outcome and TA-readable message from the Job, its pod and the log."""
    cond = job_condition(finished)
    reason = getattr(cond, "reason", None)
    if getattr(pod_status, "reason", None) == "Evicted":
        return "failed", (
            f"The autograder was evicted: {getattr(pod_status, 'message', '') or 'node pressure'} "
            f"(disk allowance {limits.disk_mb} MB)."
        ), None
    init_done = getattr(getattr(init, "state", None), "terminated", None)
    if init_done is not None and init_done.exit_code != 0:
        detail = (init_done.message or "").strip()[-500:]
        return "setup_error", f"The submission could not be delivered into the pod: {detail or init_done.reason}.", None
    never_started = terminated is None and never_ran(pod_status, init)
    if never_started or (terminated is None and reason != "DeadlineExceeded"):
        why = waiting_reason(pod_status, init)
        if reason == "DeadlineExceeded":
            return "error", f"The grading pod never started before its deadline ({why}).", None
        return "error", f"The grading pod ended without running the autograder ({why}).", None
    if terminated is None:  # the deadline fired and the controller removed the pod
        return timeout_verdict(limits)
    return classify(limits, RunEnd(
        timed_out=reason == "DeadlineExceeded" or bool(report and report.exit_code == TIMEOUT_RC),
        oom_killed=terminated.reason == "OOMKilled",
        exit_code=report.exit_code if report else terminated.exit_code,
        raw_results=report.raw_results if report else None,
        problem=report.problem if report else MISSING,
    ))


def job_condition(job: Any) -> Any | None:
    """The job's terminal condition (``Complete``/``Failed`` with status True), if any."""
    status = getattr(job, "status", None)
    for cond in getattr(status, "conditions", None) or []:
        if cond.type in ("Complete", "Failed") and str(cond.status) == "True":
            return cond
    return None


def status_of(statuses: Any, name: str) -> Any | None:
    """The container status named ``name`` in a pod's (init) container statuses."""
    for status in statuses or []:
        if status.name == name:
            return status
    return None


def never_ran(pod_status: Any, init: Any) -> bool:
    """True if the pod exists but its autograder container never ran."""
    if pod_status is None:
        return False
    if getattr(pod_status, "phase", None) == "Pending":
        return True
    for cond in getattr(pod_status, "conditions", None) or []:
        if cond.type == "PodScheduled" and str(cond.status) != "True":
            return True
    main = status_of(getattr(pod_status, "container_statuses", None), MAIN)
    state = getattr(main, "state", None)
    return getattr(state, "running", None) is None and getattr(state, "terminated", None) is None


def waiting_reason(pod_status: Any, init: Any) -> str:
    if pod_status is None:
        return "no pod was created"
    for cond in getattr(pod_status, "conditions", None) or []:
        if cond.type == "PodScheduled" and str(cond.status) != "True":
            return f"not scheduled: {cond.reason}: {cond.message}"
    for status in [init, *(getattr(pod_status, "container_statuses", None) or [])]:
        waiting = getattr(getattr(status, "state", None), "waiting", None)
        if waiting is not None:
            return f"{status.name} waiting: {waiting.reason}: {waiting.message or ''}".rstrip(": ")
    return f"pod phase {getattr(pod_status, 'phase', '?')}"


def container_runtime(terminated: Any) -> float | None:
    """Seconds the terminated container ran, from its own start and finish times."""
    start = getattr(terminated, "started_at", None)
    end = getattr(terminated, "finished_at", None)
    if isinstance(start, datetime) and isinstance(end, datetime) and end >= start:
        return (end - start).total_seconds()
    return None


def timestamp(value: Any) -> float:
    """Epoch seconds of a client timestamp (naive ones are UTC); 0 for none."""
    if not isinstance(value, datetime):
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def age_s(item: Any) -> float:
    created = timestamp(getattr(item.metadata, "creation_timestamp", None))
    return time.time() - created if created else 0.0
