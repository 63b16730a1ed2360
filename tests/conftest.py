"""Shared test fixtures: real Postgres, Redis, Mosquitto and Docker; no fakes.

A test that needs a service that is not running fails (never skips) with a message naming
the service and the command that starts it. Each test that asks for ``database`` gets its
own Postgres database, cloned from a migrated template.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from greengrader.context import Context, set_current_context
from greengrader.db import Database
from greengrader.settings import Settings, get_settings

REPO = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("GREENGRADER_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_URL = f"postgresql+psycopg2://postgres@{PG_HOST}:5432/postgres"
# One Redis database per test process (1..15), so parallel test runs never flush each other.
REDIS_URL = os.environ.get(
    "GREENGRADER_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}"
)
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
# Distributed settings need an explicit pseudonym key (there is no built-in one).
TEST_PSEUDONYM_KEY = "test-only-pseudonym-key-0123456789"

HOW_TO_START = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "redis": "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no",
    "mosquitto": "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
    "docker": "dockerd --iptables=false --bridge=none &  (install with: apt-get install -y docker.io)",
}


def require(service: str, ok: bool, detail: str = "") -> None:
    if not ok:
        pytest.fail(
            f"{service} is not reachable{': ' + detail if detail else ''}. "
            f"Start it with: {HOW_TO_START[service]}  (or run scripts/test.sh, which does)",
            pytrace=False,
        )


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared")).resolve()
    assert path.is_dir(), f"shared material not found at {path} (set GREENGRADER_SHARED_DIR)"
    return path


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "gradescope"


@pytest.fixture(scope="session")
def carbon_dir(shared_dir: Path) -> Path:
    return shared_dir / "carbon"


# --- Postgres -------------------------------------------------------------------------

def _admin_execute(*statements: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def pg_url(name: str) -> str:
    return f"postgresql+psycopg2://postgres@{PG_HOST}:5432/{name}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, created once per test session."""
    require("postgres", port_open(PG_HOST, 5432))
    name = f"gg_tpl_{os.getpid()}"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    db = Database(pg_url(name))
    db.upgrade()
    db.dispose()
    yield name
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(pg_template: str) -> Iterator[Database]:
    """A fresh, migrated Postgres database for this test (dropped afterwards)."""
    name = f"gg_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    db = Database(pg_url(name))
    yield db
    db.dispose()
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database() -> Iterator[Database]:
    """An empty Postgres database (no tables), for migration tests."""
    require("postgres", port_open(PG_HOST, 5432))
    name = f"gg_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    db = Database(pg_url(name))
    yield db
    db.dispose()
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Redis, MQTT, Docker ----------------------------------------------------------------

@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        require("redis", False, str(exc))
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """The machine's real Mosquitto broker."""
    require("mosquitto", port_open(MQTT_HOST, MQTT_PORT))
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def topic_prefix() -> str:
    """A unique MQTT topic prefix so concurrent tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # docker raises several unrelated types when no daemon runs
        require("docker", False, str(exc))
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    tag = get_settings().base_image
    try:
        docker_client.images.get(tag)
    except Exception:
        pytest.fail(f"base image {tag} missing: run scripts/build-base-image.sh", pytrace=False)
    return tag


# --- Settings and context -------------------------------------------------------------

@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def env_settings(
    monkeypatch: pytest.MonkeyPatch, home: Path, database: Database, redis_url: str
) -> Iterator[Settings]:
    """Distributed settings (Postgres + Redis) exported to the environment, so CLI
    subprocesses and Celery workers started by the test see the same configuration."""
    monkeypatch.setenv("GREENGRADER_HOME", str(home))
    monkeypatch.setenv("GREENGRADER_DATABASE_URL", database.url)
    monkeypatch.setenv("GREENGRADER_BROKER_URL", redis_url)
    monkeypatch.setenv("GREENGRADER_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    get_settings.cache_clear()
    settings = get_settings()
    yield settings
    get_settings.cache_clear()


@pytest.fixture
def context(env_settings: Settings, database: Database) -> Iterator[Context]:
    """A context on the test's Postgres database, installed for in-process task calls."""
    ctx = Context.from_settings(env_settings)
    ctx.db = database
    set_current_context(ctx)
    yield ctx
    set_current_context(None)


# --- Subprocesses -------------------------------------------------------------------

class Processes:
    """Starts long-running commands (workers, beat, bridge) and always stops them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Any] = []

    def start(
        self, *argv: str, env: dict[str, str] | None = None, name: str = "proc", inherit: bool = True
    ) -> Any:
        """Start ``argv``; ``inherit=False`` drops every inherited GREENGRADER_* variable."""
        import subprocess

        base = dict(os.environ) if inherit else clean_environ()
        log = (self.log_dir / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            list(argv), env={**base, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        import signal
        import subprocess

        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def clean_environ() -> dict[str, str]:
    """The environment without any GREENGRADER_* variable (the embedded default)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GREENGRADER_")}


def celery_argv(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "celery", "-A", "greengrader", *args]
