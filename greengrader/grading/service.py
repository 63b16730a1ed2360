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
from functools import partial
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from greengrader.agreement.compare import Side
from greengrader.agreement.evidence import Judged, files_digest, judge
from greengrader.context import Context
from greengrader.errors import (
    ExecutorError,
    GreengraderError,
    ImageBuildError,
    InvalidResults,
    PlacementFailed,
)
from greengrader.grading.claim import Claim, claim_submission, owned
from greengrader.grading.executors import ExecutionResult, Executor, Job, Limits, get_executor
from greengrader.grading.footprint import footprint
from greengrader.grading.images import ImageBuilder
from greengrader.grading.results import ParsedResults, parse_results
from greengrader.grading.retry import place_elsewhere, retry
from greengrader.models import Assignment, Result, Status, Worker
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
    claim = claim_submission(ctx, submission_id, task_id, worker, dispatch)
    if claim is None:
        return None
    claimed_at = time.monotonic()
    executor = executor or context_executor(ctx, worker)
    builder = builder or context_builder(ctx)
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
        place_elsewhere(ctx, submission_id, task_id, claim.region, str(exc))
        return None
    except ExecutorError as exc:
        builder.forget()  # e.g. the image was pruned meanwhile: look again next time
        retry(ctx, submission_id, task_id, f"infrastructure error: {exc}")
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


def context_executor(ctx: Context, worker: str | None = None) -> Executor:
    """The context's executor for the node ``worker`` (its labels name the node): built
    once, so its client and pending container removals carry over from job to job."""
    kwargs = {"worker": worker} if worker else {}
    build = partial(get_executor, ctx.settings.executor, ctx.settings, **kwargs)
    return ctx.memo(f"grading.executor:{worker or ''}", build)


def context_builder(ctx: Context) -> ImageBuilder:
    """The context's image builder (it remembers which images exist)."""
    return ctx.memo("grading.builder", lambda: ImageBuilder(ctx.settings))


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


def _finish_error(ctx: Context, submission_id: int, task_id: str, claim: Claim, reason: str) -> Result | None:
    with ctx.db.transaction() as session:
        sub = owned(session, submission_id, task_id)
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
    ctx: Context, submission_id: int, task_id: str, claim: Claim, graded: Graded, executor: Executor,
    judged: Judged, digest: str,
) -> Result | None:
    ex = graded.execution
    spent = footprint(ctx, claim.region, ex)
    with ctx.db.transaction() as session:
        sub = owned(session, submission_id, task_id)
        if sub is None:
            return None
        hostname = getattr(executor, "worker", socket.gethostname())
        worker_id = ctx.memo("grading.worker_ids", WorkerIds).get(session, hostname)
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
        result.energy_kwh, result.carbon_g, result.intensity = spent.energy_kwh, spent.carbon_g, spent.intensity
        agreement = judged.comparison.agreement
        result.agreement, result.comparison = agreement, judged.as_json()
        result.agrees = None if agreement is None else agreement != "differs"
        result.files_digest, result.sandbox = digest, ex.sandbox
        sub.move_to(STATUS_FOR[ex.outcome], ex.message[:2000], now=now)
        sub.infra_failures = 0
        if claim.image_ready != graded.image:
            sub.assignment.build_status, sub.assignment.image_tag = "ready", graded.image
    GRADES.labels(ex.outcome, claim.region).inc()
    if spent.carbon_g is not None:
        CARBON_EMITTED_G.labels(claim.region).inc(spent.carbon_g)
    return result


class WorkerIds:
    """Worker registry ids by hostname. The row rarely changes: looked up once a minute,
    not once per job."""

    TTL_S = 60.0

    def __init__(self) -> None:
        self._ids: dict[str, tuple[int | None, float]] = {}

    def get(self, session: Session, hostname: str) -> int | None:
        hit = self._ids.get(hostname)
        if hit is not None and time.monotonic() - hit[1] < self.TTL_S:
            return hit[0]
        worker_id = session.scalars(select(Worker.id).where(Worker.hostname == hostname)).first()
        self._ids[hostname] = (worker_id, time.monotonic())
        return worker_id
