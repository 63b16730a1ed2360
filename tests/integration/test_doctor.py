"""`greengrader doctor` against the real services: each finding names what it checked and the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from greengrader.cli import cli
from greengrader.db import Database
from greengrader.settings import Settings, get_settings


def doctor(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    get_settings.cache_clear()
    out = CliRunner().invoke(cli, ["doctor", "--json", *args])
    assert out.exception is None or isinstance(out.exception, SystemExit), out.output
    return out.exit_code, {f["name"]: f for f in json.loads(out.output)}


def test_doctor_on_a_working_deployment(env_settings: Settings, database: Database) -> None:
    code, found = doctor()
    assert found["database"]["verdict"] == "ok" and "reachable, migrated" in found["database"]["summary"]
    assert database.url.rsplit("/", 1)[1] in found["database"]["summary"]
    assert found["broker"]["verdict"] == "ok" and "redis://" in found["broker"]["summary"]
    assert found["mqtt"]["verdict"] == "ok" and "127.0.0.1:1883" in found["mqtt"]["summary"]
    assert found["pseudonym key"]["verdict"] == "ok"
    assert {"docker", "base image", "sandbox", "carbon", "workers"} <= set(found)
    assert "runsc" in found["sandbox"]["summary"]
    # No worker runs in this test: a failing check makes the exit code 1, with its fix.
    assert found["workers"]["verdict"] == "FAIL" and "celery -A greengrader worker" in found["workers"]["fix"]
    assert code == 1


def test_doctor_names_an_unmigrated_database_and_a_missing_key(
    monkeypatch: pytest.MonkeyPatch, env_settings: Settings, empty_database: Database,
) -> None:
    monkeypatch.setenv("GREENGRADER_DATABASE_URL", empty_database.url)
    monkeypatch.delenv("GREENGRADER_PSEUDONYM_KEY")
    monkeypatch.setenv("GREENGRADER_MQTT_PORT", "1")
    code, found = doctor()
    assert code == 1
    assert found["database"]["verdict"] == "FAIL" and "not migrated" in found["database"]["summary"]
    assert found["database"]["fix"] == "greengrader db upgrade"
    assert found["pseudonym key"]["verdict"] == "FAIL" and "openssl rand" in found["pseudonym key"]["fix"]
    assert found["mqtt"]["verdict"] == "FAIL" and "127.0.0.1:1" in found["mqtt"]["summary"]
    assert found["workers"]["verdict"] == "warn"  # cannot be judged without the tables
