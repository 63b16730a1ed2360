"""``greengrader bridge | ingest | import-gradescope | export | submissions | snippet``."""

from __future__ import annotations

import logging
import re
import signal
from importlib import resources
from pathlib import Path
from types import FrameType

import click
from sqlalchemy import select

from greengrader.cli.common import cli_context, emit_rows, json_option, resolve_submission
from greengrader.errors import ConfigError
from greengrader.models.status import Status


@click.command("bridge")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Expose Prometheus metrics on this port.")
def bridge_cmd(metrics_port: int | None) -> None:
    """Run the MQTT ingestion bridge until SIGTERM/SIGINT."""
    from greengrader.bridge.mqtt import Bridge

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = cli_context()
    if ctx.settings.pseudonymise:
        ctx.settings.pseudonym_secret()  # fail at start, not on the first payload
    if metrics_port:
        from greengrader.ops.metrics import serve_metrics

        serve_metrics(metrics_port)
    bridge = Bridge(ctx)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: finishing the batch in hand", signum)
        bridge.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    bridge.run()


@click.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default=None, help="Record this topic (default: the file path).")
def ingest_cmd(files: tuple[Path, ...], topic: str | None) -> None:
    """Store payload zips without MQTT (backfill); same validation as the bridge."""
    from greengrader.bridge.ingest import ingest_bytes, make_store

    ctx = cli_context()
    store = make_store(ctx)
    failed = 0
    for path in files:
        outcome = ingest_bytes(ctx, path.read_bytes(), topic or f"file:{path.name}", store=store)
        failed += outcome.status == "quarantined"
        detail = f"submission {outcome.submission_id}" if outcome.submission_id else f"reason {outcome.reason}"
        click.echo(f"{path}: {outcome.status} ({detail})")
    if failed:
        raise SystemExit(1)


@click.command("import-gradescope")
@click.argument("export", type=click.Path(exists=True, path_type=Path))
@click.option("--autograder", "autograder", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The assignment's autograder folder (its source/ contents: setup.sh, run_autograder...).")
@click.option("--assignment-id", type=int, required=True, help="Gradescope assignment id.")
@click.option("--course-id", type=int, required=True, help="Gradescope course id.")
@click.option("--title", default="", help="Assignment title.")
@click.option("--total-points", type=float, default=None)
def import_gradescope_cmd(
    export: Path, autograder: Path, assignment_id: int, course_id: int, title: str, total_points: float | None
) -> None:
    """Import a Gradescope "Export Submissions" archive (zip or unpacked folder)."""
    from greengrader.bridge.gradescope_export import AssignmentInfo, payloads_from_export
    from greengrader.bridge.ingest import ingest_bytes, make_store

    ctx = cli_context()
    store = make_store(ctx)
    info = AssignmentInfo(assignment_id, course_id, title, total_points)
    counts: dict[str, int] = {}
    for name, data in payloads_from_export(export, autograder, info):
        outcome = ingest_bytes(ctx, data, f"gradescope-export:{name}", store=store)
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.status == "quarantined":
            click.echo(f"{name}: quarantined ({outcome.reason})", err=True)
    click.echo(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no submissions found")


@click.command("export")
@click.argument("submission_id", type=int)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export_cmd(submission_id: int, directory: Path) -> None:
    """Write a stored submission's payload (SUBMISSION_ID or Gradescope id) back to DIRECTORY."""
    from greengrader.bridge.export import export_submission

    ctx = cli_context()
    written = export_submission(ctx, resolve_submission(ctx, submission_id), directory)
    click.echo(f"wrote {written} files to {directory}")


@click.command("submissions")
@click.option("--status", type=click.Choice([s.value for s in Status]), default=None,
              help="Only submissions in this status.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@json_option
def submissions_cmd(status: str | None, limit: int, as_json: bool) -> None:
    """List stored submissions, newest first."""
    from greengrader.models import Assignment, Submission

    ctx = cli_context()
    query = (
        select(Submission, Assignment.gradescope_id)
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .order_by(Submission.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Submission.status == status)
    with ctx.db.session() as session:
        rows = [
            {"id": sub.id, "gradescope_id": sub.gradescope_id, "assignment": assignment, "status": sub.status,
             "gradescope_score": sub.gradescope_score, "region": sub.region,
             "received_at": sub.received_at.strftime("%Y-%m-%d %H:%M:%S")}
            for sub, assignment in session.execute(query)
        ]
    emit_rows(rows, {"id": "id", "gradescope_id": "gradescope id", "assignment": "assignment", "status": "status",
                     "gradescope_score": "score (Gradescope)", "region": "region", "received_at": "received"},
              as_json)


@click.command("snippet")
@click.option("--host", required=True, help="MQTT broker host the hook publishes to.")
@click.option("--topic", default="submissions", show_default=True, help="submissions or submissions/<course>.")
@click.option("--port", default=8883, show_default=True, type=click.IntRange(1, 65535))
@click.option("--wait", default=10, show_default=True, type=click.IntRange(0, 600),
              help="Seconds to wait for the receipt (0: never).")
def snippet_cmd(host: str, topic: str, port: int, wait: int) -> None:
    """Print the lines to append to a course's run_autograder."""
    from greengrader.settings import get_settings

    settings = get_settings()
    click.echo(render_snippet(host, topic, port, wait, settings.max_payload_bytes,
                              receipts=settings.mqtt_receipt_topic), nl=False)


# What may be pasted into the shell script: no quotes, spaces, $, ; or MQTT wildcards.
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.:-]{0,252})$")
_TOPIC = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")


def render_snippet(host: str, topic: str, port: int, wait: int, max_bytes: int, *,
                   receipts: str = "receipts") -> str:
    """The hook with its values filled in; a value the shell could misread is a ConfigError."""
    if not _HOST.match(host):
        raise ConfigError(f"snippet: --host {host!r} is not a host name or address")
    for name, value in (("--topic", topic), ("receipt topic (GREENGRADER_MQTT_RECEIPT_TOPIC)", receipts)):
        if not _TOPIC.match(value):
            raise ConfigError(f"snippet: {name} {value!r} must be plain topic levels (letters, digits, _ . -)")
    if not 1 <= port <= 65535:
        raise ConfigError(f"snippet: --port {port} is not a TCP port (1-65535)")
    template = (resources.files("greengrader") / "data" / "hook.sh").read_text()
    for key, value in {"__HOST__": host, "__TOPIC__": topic, "__PORT__": str(port), "__RECEIPTS__": receipts,
                       "__WAIT__": str(wait), "__MAX__": str(max_bytes)}.items():
        template = template.replace(key, value)
    return template


def register(group: click.Group) -> None:
    for command in (bridge_cmd, ingest_cmd, import_gradescope_cmd, export_cmd, submissions_cmd, snippet_cmd):
        group.add_command(command)

