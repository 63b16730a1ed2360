"""``greengrader workers`` (the registry) and ``greengrader k8s`` (cluster-side manifests)."""

from __future__ import annotations

from datetime import timedelta

import click

from greengrader.cli.common import cli_context, emit_rows, json_option
from greengrader.settings import get_settings


@click.group("workers")
def workers_group() -> None:
    """The worker registry: grading machines, their region, hardware and heartbeat."""


@workers_group.command("list")
@click.option("--stale-after", default=90.0, show_default=True, help="Seconds without a heartbeat before a worker counts as gone.")
@json_option
def list_cmd(stale_after: float, as_json: bool) -> None:
    """Registered workers, most recently seen first."""
    from greengrader.ops.workers import list_workers

    ctx = cli_context()
    now = ctx.now()
    rows = []
    for worker in list_workers(ctx):
        age = now - worker.last_heartbeat
        rows.append({
            "hostname": worker.hostname, "region": worker.region, "cpu": worker.cpu_model, "cores": worker.cores,
            "memory": f"{worker.memory_bytes / 2**30:.1f} GiB" if worker.memory_bytes else None,
            "source": worker.source, "last_seen_s": round(age.total_seconds()),
            "alive": age <= timedelta(seconds=stale_after),
        })
    emit_rows(rows, {"hostname": "hostname", "region": "region", "cpu": "cpu", "cores": "cores",
                     "memory": "memory", "source": "source", "last_seen_s": "last seen s ago",
                     "alive": "alive"}, as_json)


@click.group("k8s")
def k8s_group() -> None:
    """Kubernetes executor helpers."""


@k8s_group.command("manifests")
def manifests() -> None:
    """Print the namespace (restricted Pod Security) and deny-egress NetworkPolicy as YAML,
    for `kubectl apply -f -`."""
    import yaml

    from greengrader.grading.executors.kube_manifests import iter_manifests

    click.echo(yaml.safe_dump_all(list(iter_manifests(get_settings())), sort_keys=False), nl=False)


def register(group: click.Group) -> None:
    group.add_command(workers_group)
    group.add_command(k8s_group)
