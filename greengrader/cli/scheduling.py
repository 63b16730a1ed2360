"""``greengrader dispatch``, ``greengrader explain`` and ``greengrader cas serve``."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from greengrader.cli.common import cli_context, resolve_submission, resolve_submissions
from greengrader.errors import ConfigError, GreengraderError, NotFound
from greengrader.models import Decision, Result, Status, Submission


@click.command("dispatch")
@click.argument("submission_ids", nargs=-1, type=int)
@click.option("--now", "force", is_flag=True, help="Also release delayed (scheduled) ones now, ignoring their start time.")
@click.option("--limit", default=1000, show_default=True, help="At most this many when no ids are given.")
def dispatch(submission_ids: tuple[int, ...], force: bool, limit: int) -> None:
    """Schedule pending work now: every `received` submission, or the given ones (id or Gradescope id).

    Due `scheduled` submissions are released to their region queue too (with --now, the
    delayed ones as well).
    """
    from greengrader.scheduling.service import schedule_submission
    from greengrader.scheduling.sweep import release_due

    ctx = cli_context()
    ids = resolve_submissions(ctx, submission_ids)
    with ctx.db.session() as session:
        if ids:
            known = set(session.scalars(select(Submission.id).where(Submission.id.in_(ids))))
            missing = [i for i in ids if i not in known]
            if missing:
                raise NotFound(f"no submission with id {', '.join(map(str, missing))}")
            received = list(session.scalars(
                select(Submission.id).where(Submission.id.in_(ids), Submission.status == Status.RECEIVED.value)
            ))
        else:
            received = list(session.scalars(
                select(Submission.id).where(Submission.status == Status.RECEIVED.value)
                .order_by(Submission.received_at).limit(limit)
            ))
    console = Console()
    failures = 0
    for sid in received:
        try:
            decision = schedule_submission(ctx, sid)
        except GreengraderError as exc:
            failures += 1
            console.print(f"[red]{sid}: {exc}[/red]")
            continue
        if decision is not None:
            console.print(f"{sid}: {decision.region} at {decision.start_at:%Y-%m-%d %H:%M:%S} UTC"
                          + (f" (fallback: {decision.fallback})" if decision.fallback else ""))
            continue
        with ctx.db.session() as session:
            sub = session.get(Submission, sid)
            if sub is not None and sub.status == Status.SCHEDULED.value and sub.region is None:
                console.print(f"[yellow]{sid}: {sub.status_reason}[/yellow]")
    report = release_due(ctx, ids or None, force=force, limit=limit)
    for sid in report.released:
        console.print(f"{sid}: released to its region queue")
    if not received and not report.released:
        console.print("nothing to dispatch")
    if failures or report.send_failures:
        raise click.exceptions.Exit(1)


@click.command("explain")
@click.argument("submission_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def explain(submission_id: int, as_json: bool) -> None:
    """Show the scheduling decision for SUBMISSION_ID (or Gradescope id): candidates, intensities, choice, why."""
    ctx = cli_context()
    submission_id = resolve_submission(ctx, submission_id)
    with ctx.db.session() as session:
        sub = session.get(Submission, submission_id)
        if sub is None:
            raise NotFound(f"no submission with id {submission_id}")
        decision = session.scalars(
            select(Decision).where(Decision.submission_id == submission_id).order_by(Decision.id.desc())
        ).first()
        status = sub.status
        result = session.scalars(select(Result).where(Result.submission_id == submission_id)).first()
    if decision is None:
        raise NotFound(f"submission {submission_id} ({status}) has no scheduling decision yet")
    doc = _decision_doc(decision, status)
    doc["sandbox"] = result.sandbox if result is not None else None
    doc["agreement"] = result.agreement if result is not None else None
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    _print_decision(doc)


def _decision_doc(d: Decision, status: str) -> dict[str, Any]:
    return {
        "submission": d.submission_id, "status": status, "policy": d.policy, "region": d.region,
        "start_at": d.start_at.isoformat(), "expected_g": d.expected_g,
        "runtime_estimate_s": d.runtime_estimate_s, "reason": d.reason, "fallback": d.fallback,
        "decided_at": d.created_at.isoformat(), "candidates": d.candidates,
    }


def _print_decision(doc: dict[str, Any]) -> None:
    console = Console()
    console.print(f"submission {doc['submission']} ({doc['status']}): [bold]{doc['region']}[/bold] "
                  f"at {doc['start_at']} by {doc['policy']}")
    console.print(f"expected {doc['expected_g'] or 0:.4f} gCO2 for ~{doc['runtime_estimate_s'] or 0:.0f} s")
    console.print(f"why: {doc['reason']}")
    if doc["sandbox"] or doc["agreement"]:
        console.print(f"graded under: {doc['sandbox'] or 'unknown'}; agreement with Gradescope: "
                      f"{doc['agreement'] or 'unknown'}")
    if doc["fallback"]:
        console.print(f"[yellow]fallback: {doc['fallback']}[/yellow]")
    table = Table("region", "zone", "g/kWh now", "best g/kWh", "± forecast error", "best start", "queue wait s",
                  "usable")
    for name, c in sorted(doc["candidates"].items(), key=lambda kv: kv[1].get("intensity") or float("inf")):
        table.add_row(
            ("* " if name == doc["region"] else "") + name, str(c.get("zone") or ""),
            _num(c.get("intensity")), _num(c.get("best_intensity")), _pct(c.get("forecast_error")),
            str(c.get("best_start") or ""),
            _num(c.get("queue_wait_s")), "yes" if c.get("feasible", True) else f"no: {c.get('why_not')}",
        )
    console.print(table)


def _num(x: Any) -> str:
    return "" if x is None else f"{float(x):.1f}"


def _pct(x: Any) -> str:
    return "" if x is None else f"{100 * float(x):.0f} %"


@click.group("cas")
def cas_group() -> None:
    """The carbon-aware scheduler (CAS) HTTP service, c3lab API compatible."""


@cas_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="uvicorn worker processes.")
def cas_serve(host: str, port: int, workers: int) -> None:
    """Serve /carbon-aware-scheduler/ (GET with a JSON body, or POST)."""
    from greengrader.context import Context
    from greengrader.scheduling.cas_service import serve

    _check_bindable(host, port)
    click.echo(f"CAS listening on http://{host}:{port}/carbon-aware-scheduler/ (health: /healthz)", err=True)
    serve(Context.from_settings(), host, port, workers)


def _check_bindable(host: str, port: int) -> None:
    """Fail with one line before announcing anything when the address is taken."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise ConfigError(f"cas serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def register(group: click.Group) -> None:
    group.add_command(dispatch)
    group.add_command(explain)
    group.add_command(cas_group)
