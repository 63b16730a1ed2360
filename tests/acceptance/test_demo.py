"""`greengrader demo` on the embedded default: no servers, real Docker grading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.conftest import clean_environ


def test_demo_grades_every_example_and_agrees_with_gradescope(tmp_path: Path, base_image: str, docker_client: Any) -> None:
    home = tmp_path / "home"
    env = {**clean_environ(), "GREENGRADER_HOME": str(home), "COLUMNS": "160"}
    out = subprocess.run(
        [sys.executable, "-m", "greengrader", "demo", "--grade-timeout", "10"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    engine = sa.create_engine(f"sqlite:///{home / 'greengrader.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select s.gradescope_id, s.status, r.score, s.gradescope_score, r.agrees, r.carbon_g "
            "from submission s join result r on r.submission_id = s.id"
        )).all()
    engine.dispose()
    assert len(rows) >= 7
    assert all(r.agrees for r in rows), rows
    assert {r.status for r in rows} <= {"graded", "failed"}
    assert any(r.score == 10.0 for r in rows)
    assert all(r.carbon_g is not None and r.carbon_g > 0 for r in rows)
    html = (home / "demo-report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    assert "990001" in out.stdout
    assert docker_client.containers.list(all=True, filters={"label": "greengrader.job"}) == []
