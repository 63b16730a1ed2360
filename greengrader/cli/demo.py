"""``greengrader demo``: ingest, schedule and grade the shipped examples end to end."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from greengrader.cli.common import cli_context
from greengrader.demo.run import DemoRow, demo_environment, docker_problem, run_demo
from greengrader.errors import ConfigError
from greengrader.settings import get_settings


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _table(rows: list[DemoRow]) -> Table:
    table = Table(title="GreenGrader demo: every example submission, graded where the grid is greenest")
    for col in ("submission", "assignment/case", "status", "region", "score", "Gradescope", "agrees",
                "runtime s", "overhead s", "gCO2"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        score = f"{_num(r.score, '.1f')}/{_num(r.max_score, '.1f')}" if r.score is not None else "-"
        agrees = {True: "yes", False: "NO", None: "-"}[r.agrees]
        table.add_row(str(r.gradescope_id), f"{r.assignment}/{r.case}", r.status, r.region or "-", score,
                      _num(r.gradescope_score, ".1f"), agrees, _num(r.runtime_s, ".2f"),
                      _num(r.overhead_s, ".3f"), _num(r.carbon_g, ".4f"))
    return table


def _isolate(database: str) -> Path:
    """Switch this process to the demo's own environment; returns the real home."""
    if "greengrader.celery_app" in sys.modules:
        # Celery reads its broker from the settings once, at import: too late to isolate.
        raise ConfigError("demo: run it as its own command (`greengrader demo`), not after other tasks")
    settings = get_settings()
    env = demo_environment(settings, database, os.environ)
    for key in [k for k in os.environ if k.startswith("GREENGRADER_")]:
        del os.environ[key]
    os.environ.update(env)
    get_settings.cache_clear()
    return settings.home


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="where to write the report (default: <home>/demo-report)")
@click.option("--timeout", "timeout_s", type=float, default=240.0, show_default=True,
              help="give up waiting for grades after this many seconds")
@click.option("--grade-timeout", type=int, default=20, show_default=True,
              help="per-submission time limit for the demo (the examples include an infinite loop)")
@click.option("--database", type=click.Choice(["isolated", "configured"]), default="isolated", show_default=True,
              help="isolated: a SQLite database of the demo's own under <home>/demo, fresh on every run; "
                   "configured: GREENGRADER_DATABASE_URL (earlier demo rows are reused, never duplicated)")
def demo_cmd(out_dir: Path | None, timeout_s: float, grade_timeout: int, database: str) -> None:
    """Run the whole pipeline on the shipped examples (no servers; never touches other work)."""
    # Wide enough for the table even when stdout is not a terminal.
    console = Console(width=max(Console().width, 160))
    real_home = _isolate(database)
    ctx = cli_context()
    settings = ctx.settings
    ctx.settings = settings.model_copy(update={"grade_timeout_s": min(grade_timeout, settings.grade_timeout_s)})
    problem = docker_problem(settings.base_image) if settings.executor == "docker" else None
    if problem:
        console.print(f"[yellow]{problem.message}[/]")
    from greengrader.db import safe_url

    where = "the demo's own SQLite database" if database == "isolated" else "the configured database"
    console.print(f"database: {where} ({safe_url(ctx.db.url)}); broker: the demo's own; "
                  f"carbon: {settings.carbon_source}; policy: {settings.policy}")
    with console.status("ingesting, scheduling and grading the examples...") as status:
        rows = run_demo(
            ctx, grade=problem is None, timeout_s=timeout_s,
            on_progress=lambda done, total: status.update(f"graded {done}/{total} submissions..."),
        )
    console.print(_table(rows))
    if problem:
        console.print(problem.howto)
        raise SystemExit(1)
    from greengrader.reports import ReportData, build_report
    from greengrader.reports.database import collect

    report = build_report(ReportData(database=collect(ctx.db, "UTC")), out_dir or real_home / "demo-report")
    console.print(f"report: {report.html_path}")
    unfinished = [r for r in rows if r.status not in ("graded", "failed")]
    if unfinished:
        # A wrong grade is the autograder's business; a job that errored or never ended is ours.
        states = ", ".join(sorted({r.status for r in unfinished}))
        console.print(f"[red]{len(unfinished)} of {len(rows)} submissions did not finish grading ({states}); "
                      "`greengrader explain ID` says why[/]")
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
