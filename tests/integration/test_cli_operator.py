"""Operator safety on real Postgres: destructive commands ask first, errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from greengrader.cli import cli
from greengrader.db import Database
from greengrader.models import (
    Assignment,
    Course,
    Quarantine,
    Result,
    Status,
    Submission,
    SubmissionPayload,
)
from greengrader.settings import Settings
from tests.conftest import clean_environ
from tests.integration.scheduling_helpers import live_workers

OLD = datetime.now(UTC) - timedelta(days=400)
NEW = datetime.now(UTC) - timedelta(days=1)


def tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def test_downgrade_without_revision_drops_nothing(env_settings: Settings, database: Database) -> None:
    before = tables(database)
    out = CliRunner().invoke(cli, ["db", "downgrade"])
    assert out.exit_code == 2 and "Missing argument 'REVISION'" in out.output
    assert tables(database) == before and "submission" in before


def test_downgrade_asks_and_no_keeps_the_tables(env_settings: Settings, database: Database) -> None:
    out = CliRunner().invoke(cli, ["db", "downgrade", "base"], input="n\n")
    assert out.exit_code == 1
    assert "Downgrade" in out.output and "[y/N]" in out.output
    assert "submission" in tables(database)
    # End of input (a script piping nothing) is a "no" too.
    assert CliRunner().invoke(cli, ["db", "downgrade", "base"], input="").exit_code == 1
    assert "submission" in tables(database)


def test_downgrade_with_yes_drops(env_settings: Settings, database: Database) -> None:
    out = CliRunner().invoke(cli, ["db", "downgrade", "base", "--yes"])
    assert out.exit_code == 0, out.output
    assert "submission" not in tables(database)


def _seed(db: Database) -> dict[str, int]:
    with db.transaction() as session:
        assignment = Assignment(course=Course(gradescope_id=1, name="cs1"), gradescope_id=2, version="v1")
        ids = {}
        for name, at, status in (("old_graded", OLD, Status.GRADED), ("old_running", OLD, Status.RUNNING),
                                 ("new_graded", NEW, Status.GRADED)):
            sub = Submission(gradescope_id=len(ids) + 1, assignment=assignment, sha256=f"{len(ids):064d}",
                             size=100, metadata_json={}, received_at=at, updated_at=at, status=status.value)
            sub.payload = SubmissionPayload(data=b"x" * 100)
            session.add(sub)
            session.flush()
            if status is Status.GRADED:
                session.add(Result(submission_id=sub.id, outcome="graded", score=1.0))
            ids[name] = sub.id
        session.add_all([
            Quarantine(reason="bad_zip", sha256="a" * 64, size=7, data=b"garbage", received_at=OLD),
            Quarantine(reason="bad_zip", sha256="b" * 64, size=7, data=b"garbage", received_at=NEW),
        ])
    return ids


def _counts(db: Database) -> tuple[int, int, int, int]:
    with db.session() as s:
        return (s.scalar(sa.select(sa.func.count()).select_from(SubmissionPayload)) or 0,
                s.scalar(sa.select(sa.func.count()).select_from(Quarantine)) or 0,
                s.scalar(sa.select(sa.func.count()).select_from(Submission)) or 0,
                s.scalar(sa.select(sa.func.count()).select_from(Result)) or 0)


def test_purge_dry_run_confirm_and_what_it_keeps(env_settings: Settings, database: Database) -> None:
    ids = _seed(database)
    runner = CliRunner()
    dry = runner.invoke(cli, ["purge", "--older-than", "180d", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 1 payload(s) (100 bytes) and 1 quarantined payload(s)" in dry.output
    assert _counts(database) == (3, 2, 3, 2)
    refused = runner.invoke(cli, ["purge", "--older-than", "180d"], input="n\n")
    assert refused.exit_code == 1 and _counts(database) == (3, 2, 3, 2)
    assert runner.invoke(cli, ["purge", "--older-than", "180"]).exit_code == 2  # no unit
    done = runner.invoke(cli, ["purge", "--older-than", "180d", "--yes"])
    assert done.exit_code == 0, done.output
    # Submissions and results stay; only the finished old payload and the old quarantine row go.
    assert _counts(database) == (2, 1, 3, 2)
    with database.session() as s:
        left = set(s.scalars(sa.select(SubmissionPayload.submission_id)))
    assert left == {ids["old_running"], ids["new_graded"]}


def test_quarantine_list_show_export(env_settings: Settings, database: Database, tmp_path: Path) -> None:
    _seed(database)
    runner = CliRunner()
    listed = runner.invoke(cli, ["quarantine", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.count('"reason": "bad_zip"') == 2
    with database.session() as s:
        qid = s.scalars(sa.select(Quarantine.id)).first()
    assert runner.invoke(cli, ["quarantine", "show", str(qid)]).output.count('"sha256"') == 1
    out = tmp_path / "q.zip"
    assert runner.invoke(cli, ["quarantine", "export", str(qid), str(out)]).exit_code == 0
    assert out.read_bytes() == b"garbage"
    missing = runner.invoke(cli, ["quarantine", "show", "999999"])
    assert missing.exit_code != 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "greengrader", *args], env={**clean_environ(), **env},
                          capture_output=True, text=True, timeout=120)


def test_unmigrated_database_is_one_line(empty_database: Database, tmp_path: Path) -> None:
    out = _cli({"GREENGRADER_DATABASE_URL": empty_database.url, "GREENGRADER_HOME": str(tmp_path)}, "submissions")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert "not migrated" in out.stderr and "greengrader db upgrade" in out.stderr


def test_missing_database_is_one_line(database: Database, tmp_path: Path) -> None:
    url = database.url.rsplit("/", 1)[0] + "/gg_does_not_exist"
    out = _cli({"GREENGRADER_DATABASE_URL": url, "GREENGRADER_HOME": str(tmp_path)}, "submissions")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert "'gg_does_not_exist' does not exist" in out.stderr and "greengrader db upgrade" in out.stderr


def test_bad_values_are_usage_errors(env_settings: Settings) -> None:
    runner = CliRunner()
    for argv in (["submissions", "--status", "bogus"], ["metrics", "serve", "--port", "99999"],
                 ["bridge", "--metrics-port", "99999"], ["regions", "--at", "2024-13-01"],
                 ["carbon", "show", "US-CAL-CISO", "--from", "yesterday"]):
        out = runner.invoke(cli, argv)
        assert out.exit_code == 2, (argv, out.output)
        assert "Traceback" not in out.output and "Error" in out.output, argv


def test_misspelled_variable_warns(tmp_path: Path) -> None:
    out = _cli({"GREENGRADER_HOME": str(tmp_path), "GREENGRADER_DATABASE_URI": "postgresql://x/y"}, "regions")
    assert "unknown variable GREENGRADER_DATABASE_URI" in out.stderr
    assert "did you mean GREENGRADER_DATABASE_URL" in out.stderr


def _ingest_one(context: Any, gradescope_id: int) -> int:
    from greengrader.bridge.ingest import make_store, prepare, store_prepared
    from tests import payloads

    data = payloads.build(payloads.metadata(submission_id=gradescope_id))
    outcome = store_prepared(context, [prepare(context.settings, data, "submissions/cs1")], make_store(context))[0]
    assert outcome.submission_id is not None
    return outcome.submission_id


def test_commands_accept_the_gradescope_id(context: Any) -> None:
    sid = _ingest_one(context, 987654321)
    live_workers(context)  # placement counts live workers only
    runner = CliRunner()
    out = runner.invoke(cli, ["dispatch", "987654321"])
    assert out.exit_code == 0, out.output
    assert f"{sid}: " in out.output
    by_gradescope = runner.invoke(cli, ["explain", "987654321", "--json"])
    by_id = runner.invoke(cli, ["explain", str(sid), "--json"])
    assert by_gradescope.exit_code == 0, by_gradescope.output
    assert by_gradescope.output == by_id.output and f'"submission": {sid}' in by_id.output
    missing = runner.invoke(cli, ["explain", "123456789"])
    assert missing.exit_code != 0 and "no submission with id or Gradescope id 123456789" in str(missing.exception)


def test_dispatch_failure_exits_nonzero_through_the_entry_point(context: Any, tmp_path: Path) -> None:
    _ingest_one(context, 987654322)
    env = {k: v for k, v in os.environ.items() if k.startswith("GREENGRADER_")}
    out = _cli({**env, "GREENGRADER_POLICY": "no-such-policy"}, "dispatch")
    assert out.returncode != 0, out.stdout + out.stderr
    assert "no-such-policy" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_list_commands_print_json_and_full_width_tables(env_settings: Settings, database: Database) -> None:
    import json

    ids = _seed(database)
    runner = CliRunner()
    subs = json.loads(runner.invoke(cli, ["submissions", "--json"]).output)
    assert {s["id"] for s in subs} == set(ids.values())
    assert {"gradescope_id", "status", "received_at"} <= set(subs[0])
    results = json.loads(runner.invoke(cli, ["results", "--json"]).output)
    assert len(results) == 2 and results[0]["outcome"] == "graded"
    assert json.loads(runner.invoke(cli, ["workers", "list", "--json"]).output) == []
    # CliRunner's output is not a terminal, like a pipe: the table must keep every column.
    table = runner.invoke(cli, ["results"]).output
    assert "gCO2" in table and "turnaround s" in table
    assert max(len(line) for line in table.splitlines()) > 80


def test_janitor_all_asks_and_no_removes_nothing(tmp_path: Path, base_image: str, docker_client: Any,
                                                 monkeypatch: Any) -> None:
    from greengrader.grading.executors.docker import LABEL_JOB
    from greengrader.settings import get_settings

    monkeypatch.setenv("GREENGRADER_HOME", str(tmp_path))
    get_settings.cache_clear()
    # Someone else's running job (another worker's label): only --all would remove it.
    other = docker_client.containers.create(base_image, ["sleep", "60"], labels={LABEL_JOB: "x",
                                            "greengrader.worker": "someone-else"})
    try:
        out = CliRunner().invoke(cli, ["janitor", "--all"], input="n\n")
        assert out.exit_code == 1 and "[y/N]" in out.output
        docker_client.containers.get(other.id)  # still there (raises NotFound otherwise)
    finally:
        other.remove(force=True)
        get_settings.cache_clear()


def test_quarantine_release_after_raising_the_limit(env_settings: Settings, database: Database, tmp_path: Path,
                                                    monkeypatch: Any) -> None:
    from greengrader.settings import get_settings
    from tests import payloads

    payload = tmp_path / "p.zip"
    payload.write_bytes(payloads.build(payloads.metadata(submission_id=987650001)))
    monkeypatch.setenv("GREENGRADER_MAX_ZIP_ENTRIES", "2")
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(payload)]).exit_code == 1  # quarantined
    with database.session() as s:
        qid = s.scalars(sa.select(Quarantine.id)).one()
    still = runner.invoke(cli, ["quarantine", "release", str(qid)])
    assert still.exit_code == 1 and "still rejected" in still.output
    monkeypatch.delenv("GREENGRADER_MAX_ZIP_ENTRIES")
    get_settings.cache_clear()
    out = runner.invoke(cli, ["quarantine", "release", str(qid)])
    assert out.exit_code == 0, out.output
    assert "received as submission" in out.output
    with database.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Quarantine)) == 0
        assert s.scalar(sa.select(Submission.gradescope_id)) == 987650001
