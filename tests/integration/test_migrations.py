from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from greengrader.db import Database
from greengrader.models import Base

EXPECTED = set(Base.metadata.tables)


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_on_postgres(empty_database: Database) -> None:
    empty_database.upgrade()
    assert _tables(empty_database) == EXPECTED
    empty_database.check()  # raises if models and migrations drift
    empty_database.downgrade("base")
    assert _tables(empty_database) == set()
    empty_database.upgrade()
    assert _tables(empty_database) == EXPECTED


def test_upgrade_downgrade_upgrade_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'gg.db'}")
    db.upgrade()
    assert _tables(db) == EXPECTED
    db.check()
    db.downgrade("base")
    assert _tables(db) == set()
    db.upgrade()
    assert _tables(db) == EXPECTED
    db.dispose()


def test_cli_db_upgrade_creates_tables(empty_database: Database, tmp_path: Path) -> None:
    env = {"GREENGRADER_DATABASE_URL": empty_database.url, "GREENGRADER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "greengrader", "db", "upgrade"], env=env, capture_output=True, text=True, check=True
    )
    assert "database at head" in out.stdout
    assert _tables(empty_database) == EXPECTED


@pytest.mark.parametrize(
    ("var", "value", "argv"),
    [
        ("GREENGRADER_DATABASE_URL", "mysql://x", ["-m", "greengrader", "db", "upgrade"]),
        ("GREENGRADER_DEFAULT_REGION", "us-wset", ["-m", "greengrader", "dispatch"]),
        ("GREENGRADER_BROKER_URL", "http://x", ["-m", "celery", "-A", "greengrader", "inspect", "ping"]),
        ("GREENGRADER_DEFAULT_REGION", "us-wset", ["-m", "celery", "-A", "greengrader", "inspect", "ping"]),
    ],
)
def test_invalid_setting_is_one_line_error(tmp_path: Path, var: str, value: str, argv: list[str]) -> None:
    env = {var: value, "GREENGRADER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith(f"greengrader: {var}: ")
    assert "Traceback" not in out.stderr
