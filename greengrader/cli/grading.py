"""``greengrader images|regrade|run-local|results``: assignment images and grading."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from greengrader.agreement.compare import Side, compare
from greengrader.cli.common import (
    cli_context,
    confirm_destructive,
    emit_rows,
    json_option,
    resolve_submission,
    yes_option,
)
from greengrader.errors import ImageBuildError, NotFound
from greengrader.grading.executors import Limits, get_executor
from greengrader.grading.images import ImageBuilder
from greengrader.models import Assignment, Result, Status, Submission, SubmissionPayload
from greengrader.settings import get_settings


@click.group("images")
def images_group() -> None:
    """Assignment images (base image + autograder source + setup.sh)."""


@images_group.command("build")
@click.argument("assignment_id", type=int, required=False)
@click.option("--payload", "payload_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Build from this payload zip instead of a stored assignment.")
def images_build(assignment_id: int | None, payload_path: Path | None) -> None:
    """Build (or confirm cached) the image of ASSIGNMENT_ID (database id) or of --payload."""
    from greengrader.grading.service import payload_files

    if payload_path is not None:
        settings = get_settings()
        built = _build(ImageBuilder(settings), payload_files(payload_path.read_bytes(), settings).source, "")
        click.echo(f"{built} ready")
        return
    if assignment_id is None:
        raise click.UsageError("give ASSIGNMENT_ID or --payload")
    ctx = cli_context()
    with ctx.db.session() as session:
        sub = session.scalars(
            select(Submission).join(SubmissionPayload, SubmissionPayload.submission_id == Submission.id)
            .where(Submission.assignment_id == assignment_id).order_by(Submission.id.desc())
        ).first()
        if sub is None:
            raise NotFound(f"no stored submission of assignment {assignment_id} carries its autograder")
        data, key = sub.payload.data, str(sub.assignment.gradescope_id)
    source = payload_files(data, ctx.settings).source
    builder = ImageBuilder(ctx.settings)
    try:
        tag = _build(builder, source, key)
    except ImageBuildError as exc:
        _set_build(ctx, assignment_id, "broken", None, exc.log or str(exc))
        raise
    _set_build(ctx, assignment_id, "ready", tag, None)
    click.echo(f"{tag} ready")


def _build(builder: ImageBuilder, source: dict[str, bytes], key: str) -> str:
    built = builder.ensure(source, key)
    if built.built:
        click.echo(f"built {built.tag} in {built.seconds:.1f} s", err=True)
    return built.tag


def _set_build(ctx: Any, assignment_id: int, status: str, tag: str | None, log: str | None) -> None:
    with ctx.db.transaction() as session:
        assignment = session.get(Assignment, assignment_id)
        if assignment is not None:
            assignment.build_status = status
            assignment.image_tag = tag or assignment.image_tag
            assignment.build_log = log


@images_group.command("list")
@json_option
def images_list(as_json: bool) -> None:
    """Assignment images on this Docker host."""
    rows = [{**row, "tags": ", ".join(row["tags"]), "created": row["created"][:19]}
            for row in ImageBuilder(get_settings()).list_images()]
    emit_rows(rows, {"tags": "tag", "id": "id", "assignment": "assignment", "size_mb": "size MB",
                     "created": "created"}, as_json)


@images_group.command("prune")
@click.option("--all", "prune_all", is_flag=True, help="Also remove images of current assignment versions.")
def images_prune(prune_all: bool) -> None:
    """Remove images no assignment version in the database refers to."""
    keep: set[str] = set()
    if not prune_all:
        ctx = cli_context()
        with ctx.db.session() as session:
            keep = {t for t in session.scalars(select(Assignment.image_tag)) if t}
    removed = ImageBuilder(get_settings()).prune(keep)
    click.echo(f"removed {len(removed)} image(s)" + (": " + ", ".join(removed) if removed else ""))


@click.command("regrade")
@click.argument("submission_id", type=int)
@click.option("--here", is_flag=True, help="Grade in this process now instead of through the scheduler.")
def regrade(submission_id: int, here: bool) -> None:
    """Grade SUBMISSION_ID (or Gradescope id) again (its Result is replaced)."""
    from greengrader.grading.service import grade_submission

    ctx = cli_context()
    submission_id = resolve_submission(ctx, submission_id)
    with ctx.db.transaction() as session:
        sub = session.get(Submission, submission_id, with_for_update=True)
        if sub is None:
            raise NotFound(f"submission {submission_id} does not exist")
        if Status(sub.status) in (Status.GRADED, Status.FAILED, Status.ERROR):
            sub.move_to(Status.RECEIVED, "regrade requested", now=ctx.now())
            if sub.assignment.build_status == "broken":
                sub.assignment.build_status = "none"  # let the build run again
    if here:
        result = grade_submission(ctx, submission_id, task_id=f"regrade-{uuid.uuid4().hex[:12]}")
        click.echo(f"submission {submission_id}: " + (f"{result.outcome} {result.score}/{result.max_score}" if result else "nothing to do"))
        return
    from greengrader.bridge.ingest import enqueue_schedule

    if not enqueue_schedule(ctx, submission_id):
        raise click.ClickException("broker unreachable; the sweep will schedule it")
    click.echo(f"submission {submission_id} sent to the scheduler")


@click.command("run-local")
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timeout", "timeout_s", type=float, help="Wall-clock limit in seconds.")
@click.option("--strict", is_flag=True, default=None, help="Read-only root, tmpfs /tmp, non-root user.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run_local(payload: Path, timeout_s: float | None, strict: bool | None, as_json: bool) -> None:
    """Grade one payload zip on this machine's Docker and print the result (no database)."""
    from greengrader.grading.service import payload_files, run_payload

    settings = get_settings()
    files = payload_files(payload.read_bytes(), settings)
    overrides = {"timeout_s": timeout_s, "strict": strict}
    limits = Limits.from_settings(settings, overrides)
    executor = get_executor(settings.executor, settings)
    graded = run_payload(files, limits, executor, ImageBuilder(settings), f"local-{uuid.uuid4().hex[:10]}")
    ex = graded.execution
    comparison = compare(graded.side(), Side.from_results(files.gradescope_results))
    summary: dict[str, Any] = {
        "outcome": ex.outcome, "message": ex.message, "score": graded.score, "max_score": graded.max_score,
        "gradescope_score": files.gradescope_score, "agreement": comparison.agreement,
        "agrees": None if comparison.agreement is None else comparison.agreement != "differs",
        "differing_tests": [t for t in comparison.tests if t["verdict"] != "same"], "sandbox": ex.sandbox,
        "runtime_s": round(ex.runtime_s, 3), "cpu_s": ex.cpu_s, "memory_peak_bytes": ex.memory_peak_bytes,
        "image": graded.image, "tests": graded.parsed.tests if graded.parsed else [],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    table = Table("test", "score", "max", "status")
    for test in summary["tests"]:
        table.add_row(str(test.get("name", "")), str(test.get("score")), str(test.get("max_score")), str(test.get("status", "")))
    console = Console()
    console.print(table)
    console.print(
        f"[bold]{ex.outcome}[/bold] {graded.score}/{graded.max_score} (Gradescope {files.gradescope_score}, "
        f"{comparison.agreement or 'no Gradescope results'}) in {ex.runtime_s:.2f} s under {ex.sandbox} — {ex.message}"
    )
    for test in summary["differing_tests"]:
        console.print(f"  {test['verdict']}: {describe_test(test)}", markup=False)
    if ex.stdout.strip():
        console.print("[dim]output:[/dim]")
        console.print(ex.stdout[-2000:], markup=False, highlight=False)


@click.command("results")
@click.option("--disagreements", is_flag=True,
              help="Only results that really differ from Gradescope's, with the tests that differ "
                   "(known-nondeterministic tests do not count).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@json_option
def results_cmd(disagreements: bool, limit: int, as_json: bool) -> None:
    """Stored grading results, newest first."""
    ctx = cli_context()
    query = select(Result, Submission).join(Submission, Result.submission_id == Submission.id)
    if disagreements:
        query = query.where(Result.agreement == "differs")
    query = query.order_by(Result.id.desc()).limit(limit)
    with ctx.db.session() as session:
        rows = []
        for result, sub in session.execute(query).all():
            row: dict[str, Any] = {
                "submission": sub.id, "gradescope_id": sub.gradescope_id, "region": result.region,
                "sandbox": result.sandbox, "outcome": result.outcome, "score": result.score,
                "gradescope_score": sub.gradescope_score, "agreement": result.agreement or "unknown",
            }
            if disagreements:
                tests = (result.comparison or {}).get("tests", [])
                row["differing_tests"] = "\n".join(describe_test(t) for t in tests if t.get("verdict") == "differs")
            else:
                row.update(runtime_s=result.runtime_s, turnaround_s=result.turnaround_s, carbon_g=result.carbon_g)
            rows.append(row)
    headers = {"submission": "submission", "gradescope_id": "gradescope id", "region": "region", "sandbox": "sandbox",
               "outcome": "outcome", "score": "score", "gradescope_score": "gradescope", "agreement": "agreement"}
    if disagreements:
        headers["differing_tests"] = "differing tests"
    else:
        headers.update(runtime_s="runtime s", turnaround_s="turnaround s", carbon_g="gCO2")
    emit_rows(rows, headers, as_json)


def describe_test(test: dict[str, Any]) -> str:
    """``name: ours passed 1/1, Gradescope failed 0/1`` for one compared test."""
    def side(outcome: dict[str, Any] | None) -> str:
        if outcome is None:
            return "absent"
        score = outcome.get("score")
        top = outcome.get("max_score")
        points = "" if score is None else f" {score:g}" + ("" if top is None else f"/{top:g}")
        return f"{outcome.get('status') or ''}{points}".strip() or "no score"

    return f"{test.get('key')}: ours {side(test.get('ours'))}, Gradescope {side(test.get('gradescope'))}"



@click.command("janitor")
@click.option("--all", "everything", is_flag=True,
              help="Remove every grading container on this daemon, also other workers' running ones "
                   "(asks first unless --yes).")
@click.option("--everything", "everything", is_flag=True, hidden=True)
@yes_option
def janitor(everything: bool, yes: bool) -> None:
    """Remove leftover grading containers and volumes (after a crash)."""
    from greengrader.grading.executors.docker import DockerExecutor

    settings = get_settings()
    executor = get_executor(settings.executor, settings)
    if everything and isinstance(executor, DockerExecutor):
        confirm_destructive("Remove EVERY grading container, including jobs running right now?", yes)
        removed = executor.janitor(everything=True)
    else:
        removed = executor.janitor()
    click.echo(f"removed {removed} leftover(s)")


def register(group: click.Group) -> None:
    for command in (images_group, regrade, run_local, results_cmd, janitor):
        group.add_command(command)
