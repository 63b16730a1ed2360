"""``greengrader doctor``: one screen of what this deployment needs, and how to fix each gap."""

from __future__ import annotations

import json

import click

from greengrader.settings import get_settings

_MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "FAIL": "[red]FAIL[/]"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor_cmd(as_json: bool) -> None:
    """Check database, broker, MQTT, Docker, base image, sandbox, carbon data, workers and keys.

    Exits 1 when anything FAILs (warnings do not), so scripts can gate on it.
    """
    from rich.console import Console
    from rich.markup import escape

    from greengrader.ops.doctor import Verdict, run_doctor
    from greengrader.regions.registry import load_regions

    settings = get_settings()
    if settings.embedded:
        from greengrader.cli.common import cli_context

        cli_context()  # the embedded SQLite database is created and migrated on first use
    findings = run_doctor(settings, load_regions(settings.regions_file))
    if as_json:
        click.echo(json.dumps([{"name": f.name, "verdict": f.verdict.value, "summary": f.summary, "fix": f.fix}
                               for f in findings], indent=2))
    else:
        console = Console(width=max(Console().width, 120), highlight=False)
        for f in findings:
            console.print(f"{_MARK[f.verdict.value]} {f.name:<14} {escape(f.summary)}")
            if f.fix:
                console.print(f"     {'':<14} [dim]fix:[/] {escape(f.fix)}")
    if any(f.verdict is Verdict.FAIL for f in findings):
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(doctor_cmd)
