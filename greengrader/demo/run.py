"""``greengrader demo``: the whole pipeline on the embedded default, in one process.

The example assignments under ``examples/`` are published through the same ingest path
as the MQTT bridge, scheduled by the configured policy and graded in Docker by a real
Celery worker running in this process on the embedded (filesystem) broker. Nothing is
simulated: the table printed at the end comes from the Result rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from greengrader.bridge.ingest import ingest_bytes, make_store
from greengrader.bridge.records import IngestOutcome
from greengrader.context import Context, set_current_context
from greengrader.demo.examples import EXAMPLES_DIR, example_cases, example_names, example_payload
from greengrader.models import TERMINAL, Decision, Result, Status, Submission
from greengrader.settings import Settings

log = logging.getLogger(__name__)

DEMO_TOPIC = "submissions/demo"
FIRST_DEMO_ID = 990001

DOCKER_HOWTO = (
    "Docker is not available, so nothing was graded. To enable it on Debian/Ubuntu:\n"
    "  sudo apt-get install -y docker.io debootstrap\n"
    "  sudo dockerd --iptables=false --bridge=none &      # or: sudo systemctl start docker\n"
    "  sudo scripts/build-base-image.sh                  # the autograder base image (~1 min)\n"
    "then run `greengrader demo` again (scripts/demo.sh does all of this)."
)
IMAGE_HOWTO = (
    "The Docker daemon runs but the autograder base image is missing, so nothing was graded.\n"
    "Build it (about a minute; needs debootstrap) with:\n"
    "  sudo scripts/build-base-image.sh\n"
    "then run `greengrader demo` again (scripts/demo.sh does this)."
)


@dataclass
class DemoRow:
    submission_id: int
    gradescope_id: int
    assignment: str
    case: str
    status: str
    region: str | None
    score: float | None
    max_score: float | None
    gradescope_score: float | None
    agrees: bool | None
    runtime_s: float | None
    overhead_s: float | None
    carbon_g: float | None
    message: str | None


def demo_environment(settings: Settings, database: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The ``GREENGRADER_*`` environment the demo runs in.

    The demo always gets a home (and so an embedded broker) of its own under
    ``<home>/demo``: its in-process worker then only ever sees the tasks the demo itself
    sent, never a real deployment's queued jobs. ``database="isolated"`` also gives it its
    own SQLite database there, recreated on every run; ``"configured"`` keeps the
    configured database (the demo's rows are reused on later runs, never duplicated).
    """
    demo_home = settings.home / "demo"
    env = {k: v for k, v in environ.items()
           if k.startswith("GREENGRADER_") and k not in ("GREENGRADER_BROKER_URL", "GREENGRADER_RESULT_BACKEND")}
    env["GREENGRADER_HOME"] = str(demo_home)
    if database == "isolated":
        env.pop("GREENGRADER_DATABASE_URL", None)
        reset_demo_home(demo_home)
    else:
        env["GREENGRADER_DATABASE_URL"] = settings.effective_database_url
    return env


def reset_demo_home(demo_home: Path) -> None:
    """Remove the demo's own database and broker folder (a fresh, repeatable run)."""
    import shutil

    for name in ("greengrader.db", "greengrader.db-wal", "greengrader.db-shm"):
        (demo_home / name).unlink(missing_ok=True)
    shutil.rmtree(demo_home / "broker", ignore_errors=True)


@dataclass(frozen=True)
class DockerProblem:
    """Why grading in Docker cannot run here, and the commands that fix it."""

    message: str
    howto: str


def docker_problem(base_image: str) -> DockerProblem | None:
    """Why grading in Docker cannot run here, or None when it can."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # docker raises unrelated types when no daemon runs
        return DockerProblem(f"cannot reach the Docker daemon ({type(exc).__name__})", DOCKER_HOWTO)
    try:
        client.images.get(base_image)
    except Exception:
        return DockerProblem(f"the base image {base_image} is missing", IMAGE_HOWTO)
    finally:
        client.close()
    return None


def existing_demo_submissions(ctx: Context) -> dict[int, int]:
    """Gradescope id -> submission id of the examples an earlier demo run stored here."""
    with ctx.db.session() as session:
        rows = session.execute(
            select(Submission.gradescope_id, Submission.id)
            .where(Submission.topic == DEMO_TOPIC, Submission.gradescope_id >= FIRST_DEMO_ID)
            .order_by(Submission.id)
        ).all()
    return {gid: sid for gid, sid in rows}


def publish_examples(ctx: Context, names: Sequence[str], root: Path = EXAMPLES_DIR) -> list[tuple[str, str, IngestOutcome]]:
    """Ingest every example submission through the bridge's code path.

    An example an earlier run already stored (same Gradescope id, demo topic) is reused as
    it is, so running the demo again never adds rows.
    """
    store = make_store(ctx)
    existing = existing_demo_submissions(ctx)
    outcomes = []
    next_id = FIRST_DEMO_ID
    for name in names:
        for case in example_cases(name, root):
            if next_id in existing:
                outcome = IngestOutcome(status="duplicate", sha256="", topic=DEMO_TOPIC,
                                        submission_id=existing[next_id], gradescope_id=next_id)
            else:
                data = example_payload(name, case, next_id, root=root)
                outcome = ingest_bytes(ctx, data, DEMO_TOPIC, store=store)
            outcomes.append((name, case, outcome))
            next_id += 1
    return outcomes


@contextmanager
def in_process_worker(ctx: Context, queues: Sequence[str], concurrency: int = 2) -> Iterator[Any]:
    """A real Celery worker (thread pool) consuming ``queues`` inside this process."""
    from greengrader.tasks.workers import WorkerHeart, regions_for_queues

    app = ctx.celery
    hostname = f"greengrader-demo@{int(time.time())}"
    worker = app.WorkController(
        pool_cls="threads", concurrency=concurrency, queues=list(queues), loglevel="WARNING",
        without_heartbeat=True, without_mingle=True, without_gossip=True,
        hostname=hostname,
    )
    # An embedded WorkController sends no worker_ready: register it as `celery worker` does,
    # so placement sees its regions as live.
    regions = regions_for_queues(ctx, queues)
    heart = WorkerHeart(ctx, hostname, regions, ctx.settings.worker_heartbeat_s, concurrency if regions else None)
    heart.announce()
    heart.start()
    thread = threading.Thread(target=worker.start, name="demo-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop(in_sighandler=False, exitcode=0)
        heart.stop()
        thread.join(timeout=30)
        _forget_worker(ctx, hostname)


@contextmanager
def releasing(ctx: Context, ids: Sequence[int], interval_s: float = 1.0) -> Iterator[None]:
    """The beat's release of held jobs, in this process and for the demo's own jobs only
    (the demo never moves work it did not create)."""
    from greengrader.scheduling.sweep import release_due

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                release_due(ctx, ids)
            except Exception:  # a pass that fails is retried on the next tick
                log.warning("releasing held demo jobs failed", exc_info=True)

    thread = threading.Thread(target=loop, name="demo-release", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _forget_worker(ctx: Context, hostname: str) -> None:
    # The demo worker must not linger in the registry as capacity once it is gone.
    from sqlalchemy import delete

    from greengrader.models import Worker

    with ctx.db.transaction() as session:
        session.execute(delete(Worker).where(Worker.hostname == hostname))


def wait_terminal(ctx: Context, ids: Sequence[int], timeout_s: float, on_progress: Callable[[int], None]) -> bool:
    """Poll until every submission is graded/failed/error (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    terminal = {s.value for s in TERMINAL}
    while time.monotonic() < deadline:
        with ctx.db.session() as session:
            statuses = session.scalars(select(Submission.status).where(Submission.id.in_(ids))).all()
        done = sum(1 for s in statuses if s in terminal)
        on_progress(done)
        if done == len(ids):
            return True
        time.sleep(0.3)
    return False


def collect_rows(ctx: Context, outcomes: Sequence[tuple[str, str, IngestOutcome]]) -> list[DemoRow]:
    rows = []
    with ctx.db.session() as session:
        for name, case, outcome in outcomes:
            if outcome.submission_id is None:
                continue
            sub = session.get(Submission, outcome.submission_id)
            assert sub is not None
            res = session.scalar(select(Result).where(Result.submission_id == sub.id))
            decision = session.scalar(
                select(Decision).where(Decision.submission_id == sub.id).order_by(Decision.id.desc())
            )
            overhead = None
            if res is not None and res.turnaround_s is not None and res.runtime_s is not None:
                overhead = max(res.turnaround_s - res.runtime_s, 0.0)
            rows.append(DemoRow(
                submission_id=sub.id, gradescope_id=sub.gradescope_id, assignment=name, case=case,
                status=sub.status, region=(res.region if res else None) or (decision.region if decision else sub.region),
                score=res.score if res else None, max_score=res.max_score if res else None,
                gradescope_score=sub.gradescope_score, agrees=res.agrees if res else None,
                runtime_s=res.runtime_s if res else None, overhead_s=overhead,
                carbon_g=res.carbon_g if res else None,
                message=(res.message if res else None) or sub.status_reason,
            ))
    return rows


def run_demo(
    ctx: Context,
    *,
    names: Sequence[str] | None = None,
    grade: bool = True,
    timeout_s: float = 240.0,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> list[DemoRow]:
    """Ingest, schedule and (when ``grade``) grade the examples; return one row each."""
    set_current_context(ctx)
    try:
        outcomes = publish_examples(ctx, names or example_names())
        ids = [o.submission_id for _, _, o in outcomes if o.submission_id is not None and o.status == "received"]
        queues = ["scheduling"] + [r.queue_name for r in ctx.regions.enabled()]
        if not grade:
            queues = ["scheduling"]
        with in_process_worker(ctx, queues), releasing(ctx, ids):
            if grade:
                wait_terminal(ctx, ids, timeout_s, lambda done: on_progress(done, len(ids)))
            else:
                _wait_scheduled(ctx, ids, timeout_s=60)
        return collect_rows(ctx, outcomes)
    finally:
        set_current_context(None)


def _wait_scheduled(ctx: Context, ids: Sequence[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with ctx.db.session() as session:
            pending = session.scalar(
                select(Submission.id).where(Submission.id.in_(ids), Submission.status == Status.RECEIVED.value).limit(1)
            )
        if pending is None:
            return
        time.sleep(0.3)
