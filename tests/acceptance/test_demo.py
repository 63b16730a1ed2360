"""`greengrader demo`: no servers, real Docker grading, in a database and broker of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from greengrader.db import Database
from greengrader.models import Status
from tests.conftest import TEST_PSEUDONYM_KEY, clean_environ
from tests.integration.test_scheduling import add_submissions

EXAMPLES = 7


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greengrader", "demo", "--grade-timeout", "10", *args],
        env={**clean_environ(), "COLUMNS": "160", **env}, capture_output=True, text=True, timeout=300,
    )


def demo_rows(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select s.gradescope_id, s.status, r.score, s.gradescope_score, r.agrees, r.carbon_g "
            "from submission s left join result r on r.submission_id = s.id where s.topic = 'submissions/demo'"
        )).all()
    engine.dispose()
    return list(rows)


def test_demo_grades_every_example_twice_without_duplicates(tmp_path: Path, base_image: str,
                                                           docker_client: Any) -> None:
    home = tmp_path / "home"
    for _run in range(2):
        out = run_demo({"GREENGRADER_HOME": str(home)})
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Traceback" not in out.stderr
        rows = demo_rows(f"sqlite:///{home / 'demo' / 'greengrader.db'}")
        assert len(rows) == EXAMPLES, rows  # a re-run starts afresh instead of adding rows
        assert all(r.agrees for r in rows), rows
        assert {r.status for r in rows} <= {"graded", "failed"}
        assert any(r.score == 10.0 for r in rows)
        assert all(r.carbon_g is not None and r.carbon_g > 0 for r in rows)
    # The user's own embedded database was never created, let alone written to.
    assert not (home / "greengrader.db").exists()
    html = (home / "demo-report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    assert "990001" in out.stdout
    assert docker_client.containers.list(all=True, filters={"label": "greengrader.job"}) == []


def test_demo_on_the_configured_database_leaves_other_work_alone(
    tmp_path: Path, database: Database, redis_url: str, base_image: str,
) -> None:
    foreign = add_submissions(database, 2, status=Status.RECEIVED)
    env = {"GREENGRADER_HOME": str(tmp_path / "home"), "GREENGRADER_DATABASE_URL": database.url,
           "GREENGRADER_BROKER_URL": redis_url, "GREENGRADER_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}
    for _run in range(2):
        out = run_demo(env, "--database", "configured")
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(demo_rows(database.url)) == EXAMPLES
    with database.session() as session:
        statuses = session.execute(sa.text(
            "select status from submission where id in :ids").bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": foreign}).scalars().all()
        workers = session.execute(sa.text("select count(*) from worker")).scalar()
    assert statuses == ["received", "received"]  # never scheduled nor graded by the demo
    assert workers == 0  # the demo's worker does not linger as capacity


def test_demo_names_a_missing_base_image(tmp_path: Path, docker_client: Any) -> None:
    out = run_demo({"GREENGRADER_HOME": str(tmp_path), "GREENGRADER_BASE_IMAGE": "greengrader/no-such-image:x"})
    assert out.returncode == 1
    assert "base image greengrader/no-such-image:x is missing" in out.stdout
    assert "scripts/build-base-image.sh" in out.stdout
    assert "Docker is not available" not in out.stdout


def test_readme_first_command_grades(tmp_path: Path, base_image: str) -> None:
    """The README's first set-up command, here where Docker and the base image exist already."""
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    first_block = readme.split("## Set up", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.strip() == "scripts/demo.sh"
    out = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), "--grade-timeout", "10"], cwd=tmp_path,
                         env={**clean_environ(), "GREENGRADER_HOME": str(tmp_path / "home"), "COLUMNS": "160"},
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "== greengrader demo" in out.stdout  # it says what it is doing
    rows = demo_rows(f"sqlite:///{tmp_path / 'home' / 'demo' / 'greengrader.db'}")
    assert len(rows) == EXAMPLES and all(r.carbon_g and r.carbon_g > 0 for r in rows)
    assert "graded" in out.stdout and "report:" in out.stdout


def test_test_script_and_demo_script_share_the_set_up_steps() -> None:
    from tests.conftest import REPO

    lib = REPO / "scripts" / "lib" / "setup.sh"
    for script in ("test.sh", "demo.sh"):
        text = (REPO / "scripts" / script).read_text()
        assert ". scripts/lib/setup.sh" in text and "ensure_docker" in text
        assert "apt-get install" not in text  # installing is done once, in the library
        subprocess.run(["bash", "-n", str(REPO / "scripts" / script)], check=True)
    subprocess.run(["bash", "-n", str(lib)], check=True)
    probe = subprocess.run(["bash", "-c", f". {lib}; as_root true && up 5432 && echo ok"], capture_output=True,
                           text=True, cwd=REPO, timeout=30)
    assert probe.stdout.strip() == "ok", probe.stderr
