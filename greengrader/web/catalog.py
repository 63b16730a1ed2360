"""Assignments (versions, image builds, runtimes, agreement, per-test differences) and
regions with their workers and carbon intensity now and over the next 24 hours."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import numpy as np
from sqlalchemy import case, func, select, true
from sqlalchemy.orm import Session

from greengrader.carbon.base import CarbonProvider
from greengrader.context import Context
from greengrader.errors import GreengraderError
from greengrader.models import Assignment, Course, Result, Submission, Worker
from greengrader.web.comparison import side_by_side
from greengrader.web.detail import capped_tail
from greengrader.web.schemas import AssignmentView, RegionView, TestFlakiness, WorkerView
from greengrader.web.scope import Scope

RECENT_RESULTS = 2000  # results read for runtime distributions and per-test differences
BUILD_LOG_CAP = 16 * 1024


def assignments(session: Session, scope: Scope) -> list[AssignmentView]:
    rows = session.execute(
        select(Assignment, Course.gradescope_id)
        .join(Course, Assignment.course_id == Course.id)
        .where(true() if scope.assignment_ids is None else Assignment.id.in_(scope.assignment_ids))
        .order_by(Course.gradescope_id, Assignment.gradescope_id, Assignment.id.desc())
    ).all()
    ids = [a.id for a, _ in rows]
    stats = {
        aid: (int(n), int(graded), int(agree), int(judged))
        for aid, n, graded, agree, judged in session.execute(
            select(
                Submission.assignment_id, func.count(Submission.id), func.count(Result.id),
                func.sum(case((Result.agrees.is_(True), 1), else_=0)),
                func.count(Result.agrees),
            )
            .outerjoin(Result, Result.submission_id == Submission.id)
            .where(Submission.assignment_id.in_(ids))
            .group_by(Submission.assignment_id)
        )
    }
    runtimes: dict[int, list[float]] = defaultdict(list)
    tests: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for aid, runtime, ours, theirs in session.execute(
        select(Submission.assignment_id, Result.runtime_s, Result.tests, Submission.gradescope_results)
        .join(Submission, Result.submission_id == Submission.id)
        .where(Submission.assignment_id.in_(ids))
        .order_by(Result.id.desc())
        .limit(RECENT_RESULTS)
    ):
        if runtime is not None:
            runtimes[aid].append(float(runtime))
        for row in side_by_side(ours, (theirs or {}).get("tests")):
            if row.same is not None:
                counts = tests[aid][row.name]
                counts[0] += 1
                counts[1] += 0 if row.same else 1
    out = []
    for a, course_gs in rows:
        n, graded, agree, judged = stats.get(a.id, (0, 0, 0, 0))
        rt = runtimes.get(a.id, [])
        log, _ = capped_tail(a.build_log, BUILD_LOG_CAP) if a.build_log else (None, False)
        out.append(AssignmentView(
            id=a.id, course_gradescope_id=course_gs, gradescope_id=a.gradescope_id, title=a.title,
            version=a.version, build_status=a.build_status, image_tag=a.image_tag, build_log=log,
            submissions=n, graded=graded, agreement_rate=agree / judged if judged else None,
            runtime_p50_s=float(np.percentile(rt, 50)) if rt else None,
            runtime_p90_s=float(np.percentile(rt, 90)) if rt else None,
            runtimes_s=rt,
            tests=[TestFlakiness(name=k, runs=v[0], differs=v[1]) for k, v in tests.get(a.id, {}).items()],
        ))
    return out


def regions(ctx: Context, session: Session, provider: CarbonProvider) -> list[RegionView]:
    now = ctx.now()
    max_age = timedelta(seconds=ctx.settings.health_heartbeat_max_age_s)
    by_region: dict[str | None, list[WorkerView]] = defaultdict(list)
    for w in session.scalars(select(Worker).order_by(Worker.region, Worker.hostname)):
        by_region[w.region].append(WorkerView(
            hostname=w.hostname, region=w.region, cpu_model=w.cpu_model, cores=w.cores,
            memory_gb=round(w.memory_bytes / 2**30, 1) if w.memory_bytes else None,
            last_heartbeat=w.last_heartbeat, alive=now - w.last_heartbeat <= max_age,
        ))
    out = []
    for r in ctx.regions:
        workers = by_region.get(r.name, [])
        values: list[float] = []
        step, error = ctx.settings.carbon_step_s, None
        try:
            series = provider.forecast(r.zone, now, 24 * 3600)
            values, step = [float(v) for v in series.values], series.step_s
        except GreengraderError as exc:
            error = str(exc)[:200]
        out.append(RegionView(
            name=r.name, zone=r.zone, enabled=r.enabled, capacity=r.capacity, untainted_nodes=r.untainted_nodes,
            live_workers=sum(1 for w in workers if w.alive), workers=workers,
            intensity_now=values[0] if values else None, next_24h=values, step_s=step, error=error,
        ))
    return out
