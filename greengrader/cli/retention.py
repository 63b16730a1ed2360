"""``greengrader purge`` (retention) and ``greengrader quarantine list|show|export|release``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import delete, select
from sqlalchemy.orm import undefer

from greengrader.cli.common import Duration, cli_context, confirm_destructive, yes_option
from greengrader.context import Context
from greengrader.db import Database
from greengrader.errors import NotFound
from greengrader.models import Quarantine


@click.command("purge")
@click.option("--older-than", "age", type=Duration(), required=True,
              help="Age cut-off with a unit (s, m, h, d, w), e.g. 180d.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@yes_option
def purge_cmd(age: timedelta, dry_run: bool, yes: bool) -> None:
    """Delete payload bytes of finished submissions and quarantined payloads older than --older-than.

    Submissions, their history, decisions and results are kept (see docs/operations.md).
    """
    from greengrader.ops.retention import purge

    ctx = cli_context()
    cutoff = ctx.now() - age
    if not dry_run:
        counts = purge(ctx.db, cutoff, dry_run=True)
        confirm_destructive(
            f"Delete {counts.payloads} payload(s) and {counts.quarantined} quarantined payload(s) "
            f"received before {cutoff:%Y-%m-%d %H:%M} UTC from {ctx.db.url}?", yes,
        )
    counts = purge(ctx.db, cutoff, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {counts.payloads} payload(s) ({counts.payload_bytes} bytes) and "
               f"{counts.quarantined} quarantined payload(s) ({counts.quarantined_bytes} bytes) "
               f"received before {cutoff:%Y-%m-%d %H:%M} UTC")


@click.group("quarantine")
def quarantine_group() -> None:
    """Rejected payloads: list, show, export or release (re-ingest) them."""


def _row(q: Quarantine) -> dict[str, Any]:
    return {"id": q.id, "received_at": q.received_at.isoformat(), "reason": q.reason, "detail": q.detail,
            "size": q.size, "kept_bytes": not q.truncated, "sha256": q.sha256, "topic": q.topic}


def _get(ctx: Context, quarantine_id: int, *, with_data: bool = False) -> Quarantine:
    with ctx.db.session() as session:
        query = select(Quarantine).where(Quarantine.id == quarantine_id)
        if with_data:
            query = query.options(undefer(Quarantine.data))
        row = session.scalar(query)
    if row is None:
        raise NotFound(f"no quarantined payload {quarantine_id} (see `greengrader quarantine list`)")
    return row


@quarantine_group.command("list")
@click.option("--reason", default=None, help="Only this rejection reason (e.g. bad_zip).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def list_cmd(reason: str | None, limit: int, as_json: bool) -> None:
    """Quarantined payloads, newest first."""
    ctx = cli_context()
    query = select(Quarantine).order_by(Quarantine.id.desc()).limit(limit)
    if reason:
        query = query.where(Quarantine.reason == reason)
    with ctx.db.session() as session:
        rows = [_row(q) for q in session.scalars(query)]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table("id", "received (UTC)", "reason", "size", "bytes kept", "topic", "detail")
    for r in rows:
        table.add_row(str(r["id"]), r["received_at"][:19], r["reason"], str(r["size"]),
                      "yes" if r["kept_bytes"] else "truncated", r["topic"] or "", (r["detail"] or "")[:60])
    Console(width=max(Console().width, 140)).print(table)


@quarantine_group.command("show")
@click.argument("quarantine_id", type=int)
def show_cmd(quarantine_id: int) -> None:
    """Everything recorded about one quarantined payload (JSON)."""
    click.echo(json.dumps(_row(_get(cli_context(), quarantine_id)), indent=2))


@quarantine_group.command("export")
@click.argument("quarantine_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def export_cmd(quarantine_id: int, file: Path) -> None:
    """Write the kept bytes of a quarantined payload to FILE."""
    row = _get(cli_context(), quarantine_id, with_data=True)
    if row.data is None:
        raise NotFound(f"quarantined payload {quarantine_id} has no kept bytes")
    file.write_bytes(row.data)
    note = " (truncated: only the first bytes were kept)" if row.truncated else ""
    click.echo(f"wrote {len(row.data)} bytes to {file}{note}")


@quarantine_group.command("release")
@click.argument("quarantine_id", type=int)
def release_cmd(quarantine_id: int) -> None:
    """Re-ingest a quarantined payload (after fixing a limit); removes it from quarantine when stored."""
    from greengrader.bridge.ingest import ingest_bytes

    ctx = cli_context()
    row = _get(ctx, quarantine_id, with_data=True)
    if row.data is None or row.truncated:
        raise NotFound(f"quarantined payload {quarantine_id} was not kept in full; it cannot be released")
    outcome = ingest_bytes(ctx, row.data, row.topic)
    if outcome.status == "quarantined":
        raise click.ClickException(f"still rejected: {outcome.reason}")
    _delete(ctx.db, quarantine_id)
    click.echo(f"released quarantined payload {quarantine_id}: {outcome.status} as submission {outcome.submission_id}")


def _delete(db: Database, quarantine_id: int) -> None:
    with db.transaction() as session:
        session.execute(delete(Quarantine).where(Quarantine.id == quarantine_id))


def register(group: click.Group) -> None:
    group.add_command(purge_cmd)
    group.add_command(quarantine_group)
