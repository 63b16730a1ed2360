"""Grade one submission: image, hardened run, Result row, status — idempotently.

``grade_submission`` is the body of the ``greengrader.grade`` task (acks_late). It is safe
to deliver twice: a submission already in a terminal status is left alone, a fresh
``running`` one owned by another task is left alone, and a rerun after a crash replaces
the partial Result. Infrastructure failures (Docker down) put the submission back to
``queued`` for the sweep until ``max_attempts``; a broken autograder (``setup.sh``
failed) marks the assignment version broken and the submission ``error`` with the reason.
"""

from __future__ import annotations

import io
import logging
import socket
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from greengrader.agreement.compare import Side
from greengrader.agreement.evidence import Judged, files_digest, judge
from greengrader.context import Context
from greengrader.errors import (
    ExecutorError,
    GreengraderError,
    ImageBuildError,
    InvalidResults,
    NotFound,
    PlacementFailed,
)
from greengrader.grading.executors import ExecutionResult, Executor, Job, Limits, get_executor
from greengrader.grading.images import ImageBuilder
from greengrader.grading.results import ParsedResults, parse_results
from greengrader.models import Assignment, Result, Status, Submission, SubmissionPayload, Worker
from greengrader.models.status import TERMINAL
from greengrader.ops.metrics import CARBON_EMITTED_G, GRADES
from greengrader.payload.layout import METADATA
from greengrader.payload.limits import Limits as PayloadLimits
from greengrader.payload.parse import parse_payload
from greengrader.settings import Settings

log = logging.getLogger(__name__)

STATUS_FOR = {
    "graded": Status.GRADED,
    "failed": Status.FAILED,
    "timeout": Status.FAILED,
    "oom": Status.FAILED,
    "setup_error": Status.ERROR,
    "error": Status.ERROR,
}


@dataclass(frozen=True)
class PayloadFiles:
    """What grading needs from a payload: the autograder source and the job's files."""

    source: dict[str, bytes]
    files: dict[str, bytes]  # relative to /autograder: submission/..., submission_metadata.json
    total_points: float | None
    gradescope_results: dict[str, Any] | None
    gradescope_score: float | None


@dataclass
class Graded:
    """One finished run, parsed (shared by the task and ``run-local``)."""

    execution: ExecutionResult
    parsed: ParsedResults | None
    image: str
    score: float | None
    max_score: float | None

    def side(self) -> Side:
        """Our outcome for the comparison with Gradescope."""
        if self.parsed is None:
            return Side(self.score)
        return Side(self.score, self.parsed.tests, self.parsed.leaderboard)


def payload_files(data: bytes, settings: Settings) -> PayloadFiles:
    """Split a validated payload (the bridge's parser decides the layout and checks caps)."""
    parsed = parse_payload(data, PayloadLimits.from_settings(settings))
    base = parsed.metadata_path.removesuffix(METADATA)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        source = {name: zf.read(base + "source/" + name) for name in parsed.source_files}
        files = {"submission/" + n: zf.read(base + "submission/" + n) for n in parsed.submission_files}
        files["submission_metadata.json"] = zf.read(parsed.metadata_path)
    return PayloadFiles(source, files, parsed.total_points, parsed.results, parsed.score)


def run_payload(
    files: PayloadFiles,
    limits: Limits,
    executor: Executor,
    builder: ImageBuilder,
    job_id: str,
    assignment: str = "",
    region: str | None = None,
) -> Graded:
    """Build (or reuse) the image and run the job. Raises ImageBuildError/ExecutorError.

    ``region`` is where the scheduler placed the job: executors that span regions (a
    Kubernetes cluster) pin the job's pod there.
    """
    image = builder.ensure(files.source, assignment).tag
    job = Job(job_id=job_id, image=image, files=files.files, limits=limits, region=region)
    execution = executor.run(job)
    parsed = None
    if execution.outcome == "graded" and execution.results is not None:
        try:
            parsed = parse_results(execution.results, files.total_points)
        except InvalidResults as exc:
            execution.outcome, execution.message = "failed", f"results.json is not in Gradescope's format: {exc}"
    max_score = parsed.max_score if parsed and parsed.max_score is not None else files.total_points
    # Gradescope shows 0 for a run that timed out or produced no usable results.
    score = parsed.score if parsed else (0.0 if execution.outcome in ("failed", "timeout", "oom") else None)
    return Graded(execution, parsed, image, score, max_score)


# --- the task body --------------------------------------------------------------------------


@dataclass
class _Claim:
    payload: bytes
    region: str
    received_at: datetime
    gradescope_score: float | None
    assignment_id: int
    assignment_key: str
    limits: dict[str, Any]
    broken_log: str | None
    image_ready: str | None  # the image tag when the version is known to be built


def grade_submission(
    ctx: Context,
    submission_id: int,
    *,
    task_id: str | None = None,
    executor: Executor | None = None,
    builder: ImageBuilder | None = None,
    worker: str | None = None,
    dispatch: int | None = None,
) -> Result | None:
    """Grade ``submission_id``; returns the stored Result, or None when there was nothing to do.

    ``worker`` (the Celery node name) labels the job's container, so a restarted worker of
    the same name can remove what its killed predecessor left behind; it is also recorded
    on the row, so recovery can tell a job whose worker died. ``dispatch`` is the fencing
    token the message carries: a message that is not the row's current one does nothing.
    """
    task_id = task_id or f"local-{uuid.uuid4().hex[:12]}"
    claim = _claim(ctx, submission_id, task_id, worker, dispatch)
    if claim is None:
        return None
    claimed_at = time.monotonic()
    executor = executor or _executor(ctx.settings, worker)
    builder = builder or _cached(("builder", id(ctx.settings)), lambda: ImageBuilder(ctx.settings))
    limits = Limits.from_settings(ctx.settings, claim.limits)
    if claim.broken_log is not None:
        return _finish_error(ctx, submission_id, task_id, claim, claim.broken_log)
    try:
        files = payload_files(claim.payload, ctx.settings)
        if claim.image_ready is None:
            _mark_assignment(ctx, claim.assignment_id, "building", None, None, only_if_not_ready=True)
        graded = run_payload(
            files, limits, executor, builder, f"s{submission_id}-{task_id[:8]}", claim.assignment_key, claim.region
        )
    except ImageBuildError as exc:
        _mark_assignment(ctx, claim.assignment_id, "broken", None, exc.log or str(exc))
        return _finish_error(ctx, submission_id, task_id, claim, f"autograder setup failed: {exc}")
    except PlacementFailed as exc:
        _place_elsewhere(ctx, submission_id, task_id, claim.region, str(exc))
        return None
    except ExecutorError as exc:
        builder.forget()  # e.g. the image was pruned meanwhile: look again next time
        _retry(ctx, submission_id, task_id, f"infrastructure error: {exc}")
        return None
    except GreengraderError as exc:  # e.g. the stored payload no longer parses
        return _finish_error(ctx, submission_id, task_id, claim, f"cannot grade: {exc}")

    def rerun() -> Side | None:
        # Re-runs end within the job's own limit, before the sweep would recover it as stuck.
        if time.monotonic() - claimed_at + graded.execution.runtime_s > limits.timeout_s:
            raise GreengraderError("no time left for another run before the stuck-job sweep")
        again = run_payload(files, limits, executor, builder, f"s{submission_id}-{task_id[:8]}-again",
                            claim.assignment_key, claim.region)
        return again.side() if again.execution.outcome == "graded" else None

    digest = files_digest(files.files)
    judged = judge(
        ctx.db, assignment_id=claim.assignment_id, submission_id=submission_id, digest=digest,
        ours=graded.side(), gradescope=Side.from_results(files.gradescope_results), rerun=rerun,
        regrades=ctx.settings.agreement_regrades,
    )
    return _store(ctx, submission_id, task_id, claim, graded, executor, judged, digest)


def _executor(settings: Settings, worker: str | None = None) -> Executor:
    # One executor (and Docker client) per worker process, settings object and node name.
    kwargs = {"worker": worker} if worker else {}
    return _cached(  # type: ignore[no-any-return]
        ("executor", hash((id(settings), worker))), lambda: get_executor(settings.executor, settings, **kwargs)
    )


def _claim(
    ctx: Context, submission_id: int, task_id: str, worker: str | None, dispatch: int | None
) -> _Claim | None:
    with ctx.db.transaction() as session:
        # One round trip: the row (locked), its assignment and payload bytes; the status
        # history is not loaded (appending to it only inserts).
        sub = session.scalars(
            select(Submission)
            .where(Submission.id == submission_id)
            .options(
                joinedload(Submission.assignment, innerjoin=True),
                joinedload(Submission.payload, innerjoin=True).undefer(SubmissionPayload.data),
            )
            .with_for_update(of=Submission)
        ).first()
        if sub is None:
            raise NotFound(f"submission {submission_id} does not exist")
        _skip_history_load(sub)
        status = Status(sub.status)
        if status in TERMINAL:
            log.info("submission %s already %s; nothing to do", submission_id, status.value)
            return None
        now = ctx.now()
        if dispatch is not None and dispatch != sub.dispatch:
            log.info("submission %s: message %s is stale (current %s); skipping", submission_id, dispatch, sub.dispatch)
            return None
        if status == Status.RUNNING and sub.task_id != task_id:
            log.info("submission %s is being graded by task %s; skipping", submission_id, sub.task_id)
            return None
        if sub.attempts >= ctx.settings.max_attempts:
            # Each claim counts: a job that keeps killing its grading process ends here
            # instead of being redelivered forever.
            reason = (f"gave up after {sub.attempts} attempts: the grading process died or was lost "
                      f"each time (last: {sub.status_reason or status.value})")
            sub.move_to(Status.ERROR, reason[:2000], now=now)
            GRADES.labels("error", sub.region or "").inc()
            return None
        if status == Status.RECEIVED:
            sub.move_to(Status.SCHEDULED, "graded directly", now=now)
        if Status(sub.status) in (Status.SCHEDULED, Status.RUNNING):
            sub.move_to(Status.QUEUED, "rerun" if status == Status.RUNNING else None, now=now)
        sub.move_to(Status.RUNNING, f"task {task_id}", now=now)
        sub.task_id, sub.worker = task_id, worker
        sub.attempts += 1
        assignment = sub.assignment
        broken = None
        if assignment.build_status == "broken":
            broken = f"autograder setup failed earlier for this assignment version: {_tail(assignment.build_log)}"
        return _Claim(
            payload=sub.payload.data,
            region=sub.region or ctx.settings.default_region,
            received_at=sub.received_at,
            gradescope_score=sub.gradescope_score,
            assignment_id=assignment.id,
            assignment_key=str(assignment.gradescope_id),
            limits=dict(assignment.limits or {}),
            broken_log=broken,
            image_ready=assignment.image_tag if assignment.build_status == "ready" else None,
        )


def _tail(text: str | None, lines: int = 5) -> str:
    return " | ".join((text or "").strip().splitlines()[-lines:])[-1000:]


def _mark_assignment(
    ctx: Context, assignment_id: int, status: str, tag: str | None, build_log: str | None,
    *, only_if_not_ready: bool = False,
) -> None:
    with ctx.db.transaction() as session:
        assignment = session.get(Assignment, assignment_id)
        if assignment is None or (only_if_not_ready and assignment.build_status == "ready"):
            return
        if assignment.build_status == status and tag in (None, assignment.image_tag):
            return
        assignment.build_status = status
        if tag is not None:
            assignment.image_tag = tag
        if build_log is not None:
            assignment.build_log = build_log


def _skip_history_load(sub: Submission) -> None:
    # move_to() appends a StatusEvent; mark the history as loaded (empty) so appending
    # inserts one row instead of first selecting the whole history.
    set_committed_value(sub, "events", [])


def _owned(session: Session, submission_id: int, task_id: str) -> Submission | None:
    """The submission locked, if this task still owns it (a newer rerun may have taken over)."""
    sub = session.scalars(select(Submission).where(Submission.id == submission_id).with_for_update()).first()
    if sub is not None:
        _skip_history_load(sub)
    if sub is None or sub.status != Status.RUNNING.value or sub.task_id != task_id:
        log.warning("submission %s no longer owned by task %s; result discarded", submission_id, task_id)
        return None
    return sub


INFRA_RETRY_MAX = 10  # consecutive infrastructure failures before a job becomes `error`
INFRA_BACKOFF_S = (0.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)


def _retry(ctx: Context, submission_id: int, task_id: str, reason: str) -> None:
    """An infrastructure failure (Docker down or racing, image pruned) is not the
    student's result and not the job's fault: the first is sent again at once, later ones
    wait with backoff (held ``scheduled``, released by the sweep); after
    ``INFRA_RETRY_MAX`` in a row the job becomes ``error`` with the reason."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        sub = _owned(session, submission_id, task_id)
        if sub is None:
            return
        region = sub.region or ctx.settings.default_region
        sub.task_id, sub.worker = None, None
        sub.attempts -= 1  # this claim did not try the job
        sub.infra_failures += 1
        if sub.infra_failures >= INFRA_RETRY_MAX:
            sub.move_to(Status.ERROR, f"{reason} (gave up after {sub.infra_failures} tries)"[:2000], now=now)
            GRADES.labels("error", region).inc()
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


def _place_elsewhere(ctx: Context, submission_id: int, task_id: str, region: str, reason: str) -> None:
    """The region could not start the job: back to ``schedule``, avoiding that region. Not
    an attempt; bounded like other infrastructure failures."""
    from greengrader.scheduling.service import MOVED_OFF, send_schedule

    now = ctx.now()
    with ctx.db.transaction() as session:
        sub = _owned(session, submission_id, task_id)
        if sub is None:
            return
        sub.task_id, sub.worker = None, None
        sub.attempts -= 1
        sub.infra_failures += 1
        if sub.infra_failures >= INFRA_RETRY_MAX:
            sub.move_to(Status.ERROR, f"{reason} (gave up after {sub.infra_failures} tries)"[:2000], now=now)
            GRADES.labels("error", region).inc()
            return
        sub.avoid_regions = sorted({*(sub.avoid_regions or []), region})
        sub.move_to(Status.RECEIVED, f"{MOVED_OFF} {region}: {reason}"[:2000], now=now)
    try:
        send_schedule(ctx, submission_id)
    except GreengraderError as exc:  # the row is `received`: the sweep re-sends it
        log.warning("%s; leaving it for the sweep", exc)


def _finish_error(ctx: Context, submission_id: int, task_id: str, claim: _Claim, reason: str) -> Result | None:
    with ctx.db.transaction() as session:
        sub = _owned(session, submission_id, task_id)
        if sub is None:
            return None
        result = _result_row(session, submission_id, "setup_error")
        result.region, result.message = claim.region, reason
        result.finished_at = ctx.now()
        result.turnaround_s = (result.finished_at - claim.received_at).total_seconds()
        sub.move_to(Status.ERROR, reason[:2000], now=result.finished_at)
    GRADES.labels("setup_error", claim.region).inc()
    return result


def _result_row(session: Session, submission_id: int, outcome: str) -> Result:
    """The submission's Result, replacing one a previous run (crash, regrade) left."""
    session.execute(delete(Result).where(Result.submission_id == submission_id))
    result = Result(submission_id=submission_id, outcome=outcome)
    session.add(result)
    return result


def _store(
    ctx: Context, submission_id: int, task_id: str, claim: _Claim, graded: Graded, executor: Executor,
    judged: Judged, digest: str,
) -> Result | None:
    ex = graded.execution
    energy, carbon, intensity = _carbon(ctx, claim.region, ex)
    with ctx.db.transaction() as session:
        sub = _owned(session, submission_id, task_id)
        if sub is None:
            return None
        worker_id = _worker_id(session, getattr(executor, "worker", socket.gethostname()))
        result = _result_row(session, submission_id, ex.outcome)
        now = ctx.now()
        result.region, result.worker_id, result.message = claim.region, worker_id, ex.message
        result.score, result.max_score = graded.score, graded.max_score
        result.tests = graded.parsed.tests if graded.parsed else None
        result.raw_results = ex.results
        result.stdout = (ex.stdout + ("\n--- stderr ---\n" + ex.stderr if ex.stderr else ""))[: 2 * (1 << 20)]
        result.started_at, result.finished_at = ex.started_at, ex.finished_at
        result.runtime_s, result.cpu_s = ex.runtime_s, ex.cpu_s
        result.turnaround_s = (now - claim.received_at).total_seconds()
        result.energy_kwh, result.carbon_g, result.intensity = energy, carbon, intensity
        agreement = judged.comparison.agreement
        result.agreement, result.comparison = agreement, judged.as_json()
        result.agrees = None if agreement is None else agreement != "differs"
        result.files_digest, result.sandbox = digest, ex.sandbox
        sub.move_to(STATUS_FOR[ex.outcome], ex.message[:2000], now=now)
        sub.infra_failures = 0
        if claim.image_ready != graded.image:
            sub.assignment.build_status, sub.assignment.image_tag = "ready", graded.image
    GRADES.labels(ex.outcome, claim.region).inc()
    if carbon is not None:
        CARBON_EMITTED_G.labels(claim.region).inc(carbon)
    return result


def _carbon(ctx: Context, region: str, ex: ExecutionResult) -> tuple[float | None, float | None, float | None]:
    """Energy (kWh), emissions (g) and mean intensity over the run; None where unknown."""
    if ex.started_at is None:
        return None, None, None
    try:
        from greengrader.carbon import get_provider
        from greengrader.carbon.energy import emissions_g, energy_kwh, worker_power_model

        power = _cached(("power", id(ctx.settings)), lambda: worker_power_model(ctx.settings))
        kwh = energy_kwh(
            ex.cpu_s if ex.cpu_s is not None else ex.runtime_s,
            (ex.memory_peak_bytes or 0) / 2**30,
            ex.runtime_s,
            power,
            ctx.settings.pue,
        )
        provider = _cached(("provider", id(ctx.settings)), lambda: get_provider(ctx.settings.carbon_source, ctx.settings))
        grams = emissions_g(provider, ctx.regions.get(region).zone, ex.started_at, ex.runtime_s, kwh)
    except (ImportError, GreengraderError, ValueError) as exc:
        log.warning("no carbon figures for this run: %s", exc)
        return None, None, None
    return kwh, grams, (grams / kwh if kwh > 0 else None)


_CACHE: dict[tuple[str, int], Any] = {}
_WORKER_IDS: dict[str, tuple[int | None, float]] = {}


def _worker_id(session: Session, hostname: str) -> int | None:
    # The registry row rarely changes: look it up once a minute, not once per job.
    hit = _WORKER_IDS.get(hostname)
    if hit is not None and time.monotonic() - hit[1] < 60:
        return hit[0]
    worker_id = session.scalars(select(Worker.id).where(Worker.hostname == hostname)).first()
    _WORKER_IDS[hostname] = (worker_id, time.monotonic())
    return worker_id


def _cached(key: tuple[str, int], build: Any) -> Any:
    # Detecting the CPU and loading carbon data take ~1 s: once per worker process.
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]
