"""``greengrader demo``: ingest, schedule and grade the shipped examples end to end."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from greengrader.cli.common import cli_context
from greengrader.demo import DOCKER_HOWTO, DemoRow, docker_problem, run_demo


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


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="where to write the report (default: <home>/demo-report)")
@click.option("--timeout", "timeout_s", type=float, default=240.0, show_default=True,
              help="give up waiting for grades after this many seconds")
@click.option("--grade-timeout", type=int, default=20, show_default=True,
              help="per-submission time limit for the demo (the examples include an infinite loop)")
def demo_cmd(out_dir: Path | None, timeout_s: float, grade_timeout: int) -> None:
    """Run the whole pipeline on the shipped examples (embedded default: no servers)."""
    # Wide enough for the table even when stdout is not a terminal.
    console = Console(width=max(Console().width, 130))
    ctx = cli_context()
    settings = ctx.settings
    ctx.settings = settings.model_copy(update={"grade_timeout_s": min(grade_timeout, settings.grade_timeout_s)})
    problem = docker_problem(settings.base_image) if settings.executor == "docker" else None
    if problem:
        console.print(f"[yellow]{problem}[/]")
    where = "embedded SQLite" if settings.embedded else "configured database"
    console.print(f"database: {where} ({ctx.db.url}); carbon: {settings.carbon_source}; policy: {settings.policy}")
    with console.status("ingesting, scheduling and grading the examples...") as status:
        rows = run_demo(
            ctx, grade=problem is None, timeout_s=timeout_s,
            on_progress=lambda done, total: status.update(f"graded {done}/{total} submissions..."),
        )
    console.print(_table(rows))
    if problem:
        console.print(DOCKER_HOWTO)
        return
    from greengrader.reports import ReportData, build_report
    from greengrader.reports.database import collect

    report = build_report(ReportData(database=collect(ctx.db, "UTC")), out_dir or settings.home / "demo-report")
    console.print(f"report: {report.html_path}")


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
