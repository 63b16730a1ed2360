"""``greengrader workers`` (the registry) and ``greengrader k8s`` (cluster-side manifests)."""

from __future__ import annotations

from datetime import timedelta

import click

from greengrader.cli.common import cli_context
from greengrader.settings import get_settings


@click.group("workers")
def workers_group() -> None:
    """The worker registry: grading machines, their region, hardware and heartbeat."""


@workers_group.command("list")
@click.option("--stale-after", default=90.0, show_default=True, help="Seconds without a heartbeat before a worker counts as gone.")
def list_cmd(stale_after: float) -> None:
    """Registered workers, most recently seen first."""
    from rich.console import Console
    from rich.table import Table

    from greengrader.workers import list_workers

    ctx = cli_context()
    now = ctx.now()
    table = Table("hostname", "region", "cpu", "cores", "memory", "source", "last seen", "alive")
    for worker in list_workers(ctx):
        age = now - worker.last_heartbeat
        memory = f"{worker.memory_bytes / 2**30:.1f} GiB" if worker.memory_bytes else "?"
        table.add_row(
            worker.hostname, worker.region or "-", worker.cpu_model or "?", str(worker.cores or "?"),
            memory, worker.source, f"{age.total_seconds():.0f} s ago",
            "yes" if age <= timedelta(seconds=stale_after) else "no",
        )
    Console().print(table)


@click.group("k8s")
def k8s_group() -> None:
    """Kubernetes executor helpers."""


@k8s_group.command("manifests")
def manifests() -> None:
    """Print the namespace (restricted Pod Security) and deny-egress NetworkPolicy as YAML,
    for `kubectl apply -f -`."""
    import yaml

    from greengrader.executors.kubernetes import iter_manifests

    click.echo(yaml.safe_dump_all(list(iter_manifests(get_settings())), sort_keys=False), nl=False)


def register(group: click.Group) -> None:
    group.add_command(workers_group)
    group.add_command(k8s_group)
