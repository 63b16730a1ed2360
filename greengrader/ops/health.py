"""``greengrader health``: one Nagios-style verdict over every moving part.

Each check returns a :class:`Check` with a Nagios state. The overall state is the worst
one, ranked CRITICAL > WARNING > UNKNOWN > OK: a known outage outranks a check that could
not be evaluated. Checks that read the database report UNKNOWN when the database cannot
be read (unreachable, or not migrated), because then nothing can be said about them.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from greengrader.models.base import utcnow
from greengrader.ops import observe
from greengrader.regions.registry import RegionRegistry
from greengrader.settings import Settings


class State(IntEnum):
    """Nagios plugin states; the value is the process exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


_RANK = {State.OK: 0, State.UNKNOWN: 1, State.WARNING: 2, State.CRITICAL: 3}


def worst(states: list[State]) -> State:
    return max(states, key=_RANK.__getitem__, default=State.OK)


@dataclass
class Check:
    name: str
    state: State
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]

    @property
    def state(self) -> State:
        return worst([c.state for c in self.checks])

    def status_line(self) -> str:
        """``GREENGRADER <STATE> - <check>; <check>... | perfdata`` (one line)."""
        parts = [
            c.summary if c.state is State.OK else f"{c.name} {c.state.name}: {c.summary}"
            for c in self.checks
        ]
        line = f"GREENGRADER {self.state.name} - {'; '.join(parts)}"
        perf = " ".join(_perfdata(self.checks))
        return f"{line} | {perf}" if perf else line

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.name,
            "exit_code": int(self.state),
            "checks": [
                {"name": c.name, "state": c.state.name, "summary": c.summary, **c.data}
                for c in self.checks
            ],
        }


def _perfdata(checks: list[Check]) -> list[str]:
    out = []
    for check in checks:
        for key, value in check.data.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            out.append(f"{check.name}_{key}={value:g}")
    return out


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def _fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _threshold(value: float, warn: float, crit: float) -> State:
    """Higher is worse; a threshold of 0 is disabled."""
    if crit and value >= crit:
        return State.CRITICAL
    if warn and value >= warn:
        return State.WARNING
    return State.OK


def _short_error(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    first = message[0] if message else ""
    return f"{type(exc).__name__}: {first}"[:200]


def _db_error(exc: SQLAlchemyError) -> str:
    # DBAPI errors carry the driver's own message, which names the actual problem.
    orig = getattr(exc, "orig", None)
    return _short_error(orig if isinstance(orig, BaseException) else exc)


# --- Service checks ---------------------------------------------------------------------


def health_engine(settings: Settings) -> Engine:
    """A pool-less engine with short connect and statement timeouts for probing."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool, connect_args={"timeout": settings.health_timeout_s})
    timeout = max(1, round(settings.health_timeout_s))
    return create_engine(
        url,
        poolclass=NullPool,
        connect_args={
            "connect_timeout": timeout,
            "options": f"-c statement_timeout={timeout * 1000}",
        },
    )


def _where(url: str) -> str:
    from greengrader.db import safe_url

    return safe_url(url)


def check_database(engine: Engine) -> Check:
    """``SELECT 1``; the summary names the database (password masked), so a typo shows."""
    where = _where(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return Check("database", State.CRITICAL, f"{where} unreachable ({_db_error(exc)})", {"up": 0})
    return Check("database", State.OK, f"database ok ({where})", {"up": 1})


def check_broker(broker_url: str, timeout_s: float) -> Check:
    """Connects to the Celery broker (a real round trip, not just a TCP connect)."""
    try:
        if broker_url.startswith(("redis:", "rediss:")):
            import redis

            client = redis.Redis.from_url(
                broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
            try:
                client.ping()
            finally:
                client.close()
        else:
            from kombu import Connection

            with Connection(broker_url, connect_timeout=timeout_s) as conn:
                conn.ensure_connection(max_retries=1, timeout=max(1, round(timeout_s)))
    except Exception as exc:  # each transport raises its own family; all mean "down"
        return Check("broker", State.CRITICAL, f"{_where(broker_url)} unreachable ({_short_error(exc)})", {"up": 0})
    return Check("broker", State.OK, f"broker ok ({_where(broker_url)})", {"up": 1})


def check_mqtt(settings: Settings) -> Check:
    """An MQTT CONNECT with the configured credentials; refused credentials are CRITICAL.

    The client id is unique so the probe never takes over the bridge's persistent session.
    """
    if not settings.health_check_mqtt:
        return Check("mqtt", State.OK, "mqtt not checked")
    outcome = _mqtt_connect(settings)
    if outcome is None:
        return Check("mqtt", State.OK, f"mqtt ok ({settings.mqtt_host}:{settings.mqtt_port})", {"up": 1})
    return Check("mqtt", State.CRITICAL, outcome, {"up": 0})


def _mqtt_connect(settings: Settings) -> str | None:
    """None on a successful CONNACK, else why the broker could not be used."""
    import ssl

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"greengrader-health-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        clean_session=True,
    )
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_secret())
    if settings.mqtt_tls:
        ca = str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
        client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
    done = threading.Event()
    result: dict[str, str | None] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result["error"] = f"refused ({reason})" if reason.is_failure else None
        done.set()

    client.on_connect = on_connect
    where = f"{settings.mqtt_host}:{settings.mqtt_port}"
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=settings.mqtt_keepalive_s)
    except (OSError, ValueError) as exc:
        return f"unreachable at {where} ({_short_error(exc)})"
    client.loop_start()
    try:
        if not done.wait(settings.health_timeout_s):
            return f"no CONNACK from {where} within {settings.health_timeout_s:g}s"
        return result["error"]
    finally:
        client.disconnect()
        client.loop_stop()


def check_docker(settings: Settings) -> Check:
    """The Docker daemon that grades (``DOCKER_HOST`` or the local socket)."""
    if not settings.health_check_docker or settings.executor != "docker":
        return Check("docker", State.OK, f"docker not checked (executor {settings.executor})")
    try:
        import docker

        client = docker.from_env(timeout=max(1, round(settings.health_timeout_s)))
        try:
            client.ping()
            sandbox = sandbox_check(settings, client)
        finally:
            client.close()
    except Exception as exc:  # docker-py raises DockerException, requests and OS errors
        return Check("docker", State.CRITICAL, f"daemon unreachable ({_short_error(exc)})", {"up": 0})
    if sandbox.state is not State.OK:
        return Check("docker", sandbox.state, sandbox.summary, {"up": 1, **sandbox.data})
    return Check("docker", State.OK, f"docker ok ({sandbox.summary})", {"up": 1, **sandbox.data})


def sandbox_check(settings: Settings, client: Any | None = None) -> Check:
    """The sandbox grading uses: WARNING on runc (host kernel), CRITICAL when gVisor is
    required and missing."""
    from greengrader.errors import ExecutorError
    from greengrader.grading.executors.sandbox import GVISOR, sandbox_in_use

    try:
        choice = sandbox_in_use(settings, client)
    except ExecutorError as exc:
        return Check("sandbox", State.CRITICAL, str(exc), {"gvisor": 0})
    data = {"gvisor": int(choice.sandbox == GVISOR)}
    if choice.warning:
        return Check("sandbox", State.WARNING, choice.warning, data)
    return Check("sandbox", State.OK, choice.describe(), data)


def check_beat(settings: Settings) -> Check:
    """Live beats announced on a Redis broker: exactly one is expected once one was seen."""
    from greengrader.ops.beatwatch import is_redis, live_beats

    url = settings.effective_broker_url
    if not is_redis(url):
        return Check("beat", State.OK, "beat not checked (broker is not Redis)")
    try:
        beats, seen = live_beats(url, settings.health_timeout_s)
    except Exception as exc:  # the broker check reports the outage itself
        return Check("beat", State.UNKNOWN, f"cannot read beats ({_short_error(exc)})")
    where = ", ".join(f"{b.get('host')}:{b.get('pid')}" for b in beats)
    if len(beats) > 1:
        return Check("beat", State.WARNING, f"{len(beats)} beats running ({where}): periodic sweeps are "
                     "sent once per beat; run exactly one", {"beats": len(beats)})
    if not beats and seen:
        return Check("beat", State.WARNING, "no live beat: nothing releases delayed jobs or recovers lost "
                     "ones (start `celery -A greengrader beat`)", {"beats": 0})
    if not beats:
        return Check("beat", State.OK, "no beat seen yet", {"beats": 0})
    return Check("beat", State.OK, "beat alive", {"beats": 1})


def check_cas(settings: Settings) -> Check:
    """The configured CAS answers HTTP; when it does not, scheduling falls back (WARNING)."""
    if not settings.cas_url:
        return Check("cas", State.OK, "CAS not configured (in-process policy)")
    import requests

    url = settings.cas_url.rstrip("/")
    try:
        requests.get(url + "/healthz", timeout=settings.health_timeout_s).close()
    except requests.RequestException as exc:
        return Check("cas", State.WARNING, f"CAS unreachable at {url} ({_short_error(exc)}); "
                     "scheduling falls back to the in-process policy", {"up": 0})
    return Check("cas", State.OK, "CAS ok", {"up": 1})


# --- Checks on the database's contents --------------------------------------------------


def check_last_message(session: Session, settings: Settings, now: datetime) -> Check:
    age = _age(now, observe.last_message_at(session))
    if age is None:
        return Check("bridge", State.OK, "no message stored yet")
    state = _threshold(age, settings.health_message_age_warn_s, settings.health_message_age_crit_s)
    return Check("bridge", state, f"last message {_fmt_age(age)} ago", {"last_message_age_s": round(age, 1)})


def check_workers(
    session: Session, settings: Settings, regions: RegionRegistry, now: datetime
) -> Check:
    names = [r.name for r in regions.enabled()]
    alive = observe.workers_alive(session, names, now, settings.health_heartbeat_max_age_s)
    need = settings.health_min_workers_per_region
    short = [name for name in names if alive.get(name, 0) < need]
    listing = " ".join(f"{name}={alive.get(name, 0)}" for name in names)
    data: dict[str, Any] = {f"alive_{name}": alive.get(name, 0) for name in names}
    held = observe.waiting_for_worker(session)
    data["waiting_for_worker"] = held
    if held:
        listing += f"; {held} jobs waiting for a live worker"
    if (need or held) and sum(alive.values()) == 0:
        return Check("workers", State.CRITICAL, f"no live worker in any region ({listing})", data)
    if short:
        return Check("workers", State.WARNING, f"below {need} live in {', '.join(short)} ({listing})", data)
    return Check("workers", State.OK, f"workers {listing}", data)


def check_backlog(session: Session, settings: Settings) -> Check:
    from greengrader.models import TERMINAL

    counts = observe.status_counts(session)
    open_jobs = sum(n for status, n in counts.items() if status not in TERMINAL)
    state = _threshold(open_jobs, settings.health_backlog_warn, settings.health_backlog_crit)
    listing = " ".join(f"{status}={n}" for status, n in counts.items() if n)
    return Check("backlog", state, f"backlog {open_jobs} ({listing or 'empty'})", dict(counts))


def check_unscheduled(session: Session, settings: Settings, now: datetime) -> Check:
    age = _age(now, observe.oldest_unscheduled_at(session))
    if age is None:
        return Check("unscheduled", State.OK, "no unscheduled job", {"oldest_age_s": 0})
    state = _threshold(age, settings.health_unscheduled_warn_s, settings.health_unscheduled_crit_s)
    return Check("unscheduled", state, f"oldest unscheduled {_fmt_age(age)}", {"oldest_age_s": round(age, 1)})


_DbCheck = Callable[[Session], Check]


def database_checks(
    engine: Engine, settings: Settings, regions: RegionRegistry, now: datetime, reachable: bool
) -> list[Check]:
    """The checks that read tables; each is UNKNOWN when the tables cannot be read."""
    named: list[tuple[str, _DbCheck]] = [
        ("bridge", lambda s: check_last_message(s, settings, now)),
        ("workers", lambda s: check_workers(s, settings, regions, now)),
        ("backlog", lambda s: check_backlog(s, settings)),
        ("unscheduled", lambda s: check_unscheduled(s, settings, now)),
    ]
    if not reachable:
        return [Check(name, State.UNKNOWN, "database unreachable") for name, _ in named]
    checks = []
    with Session(engine) as session:
        for name, run in named:
            try:
                checks.append(run(session))
            except SQLAlchemyError as exc:
                session.rollback()
                checks.append(Check(name, State.UNKNOWN, f"cannot read ({_db_error(exc)})"))
    return checks


def run_health(settings: Settings, regions: RegionRegistry, now: datetime | None = None) -> Report:
    """Run every check once and return the report."""
    now = now or utcnow()
    engine = health_engine(settings)
    try:
        db = check_database(engine)
        checks = [db, check_broker(settings.effective_broker_url, settings.health_timeout_s)]
        checks.append(check_mqtt(settings))
        checks.append(check_beat(settings))
        checks.append(check_cas(settings))
        checks.extend(database_checks(engine, settings, regions, now, db.state is State.OK))
        checks.append(check_docker(settings))
    finally:
        engine.dispose()
    return Report(checks)
