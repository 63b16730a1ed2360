"""``greengrader doctor``: everything a deployment needs, checked once, each failure with its fix.

``health`` is the terse Nagios verdict for monitoring; ``doctor`` is for the person setting
up or debugging a machine: it names what it checked (the database URL, the broker, the MQTT
address), and says what to run when something is missing. It reuses health's probes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from greengrader.db import Database, describe_error, safe_url
from greengrader.errors import GreengraderError
from greengrader.ops import health
from greengrader.regions.registry import RegionRegistry
from greengrader.settings import Settings
from greengrader.settings.removed import REMOVED_VARIABLES

# Hourly data whose last point is older than this is replayed, not live: say so.
STALE_AFTER_S = 2 * 86400


class Verdict(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    name: str
    verdict: Verdict
    summary: str
    fix: str = ""


def _from_check(check: health.Check, fix: str) -> Finding:
    ok = check.state is health.State.OK
    return Finding(check.name, Verdict.OK if ok else Verdict.FAIL, check.summary, "" if ok else fix)


def check_database(settings: Settings, engine: Engine) -> Finding:
    url = safe_url(settings.effective_database_url)
    try:
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
        heads = set(ScriptDirectory.from_config(Database(settings.effective_database_url).alembic_config()).get_heads())
    except SQLAlchemyError as exc:
        message = str(describe_error(exc, settings.effective_database_url))
        return Finding("database", Verdict.FAIL, message, "check GREENGRADER_DATABASE_URL and that the server runs")
    if current != heads:
        state = "not migrated" if not current else f"at {', '.join(sorted(current))}, code expects {', '.join(sorted(heads))}"
        return Finding("database", Verdict.FAIL, f"{url}: {state}", "greengrader db upgrade")
    return Finding("database", Verdict.OK, f"{url}: reachable, migrated ({', '.join(sorted(heads))})")


def check_broker(settings: Settings) -> Finding:
    url = safe_url(settings.effective_broker_url)
    found = _from_check(health.check_broker(settings.effective_broker_url, settings.health_timeout_s),
                        "start Redis, or fix GREENGRADER_BROKER_URL")
    return Finding("broker", found.verdict, f"{url}: {found.summary}", found.fix)


def check_mqtt(settings: Settings) -> Finding:
    where = f"{settings.mqtt_host}:{settings.mqtt_port}"
    found = _from_check(health.check_mqtt(settings),
                        "start Mosquitto, or fix GREENGRADER_MQTT_HOST/PORT/USERNAME/PASSWORD_FILE")
    summary = found.summary if where in found.summary else f"{where}: {found.summary}"
    return Finding("mqtt", found.verdict, summary, found.fix)


def check_docker(settings: Settings) -> list[Finding]:
    """The daemon, the base image and the sandbox runtime (gVisor's ``runsc``)."""
    if settings.executor != "docker":
        return [Finding("docker", Verdict.OK, f"not used (executor {settings.executor})")]
    try:
        import docker

        client = docker.from_env(timeout=max(1, round(settings.health_timeout_s)))
        info = client.info()
    except Exception as exc:  # docker-py raises DockerException, requests and OS errors
        return [Finding("docker", Verdict.FAIL, f"daemon unreachable ({type(exc).__name__})",
                        "sudo apt-get install -y docker.io && sudo dockerd --iptables=false --bridge=none & "
                        "(or run scripts/demo.sh, which does it)")]
    try:
        out = [Finding("docker", Verdict.OK, f"daemon {info.get('ServerVersion', '?')} reachable")]
        try:
            client.images.get(settings.base_image)
            out.append(Finding("base image", Verdict.OK, f"{settings.base_image} present"))
        except Exception:  # ImageNotFound, or an API error: either way the image is unusable
            out.append(Finding("base image", Verdict.FAIL, f"{settings.base_image} missing",
                               "sudo scripts/build-base-image.sh"))
        out.append(_sandbox(settings, sorted((info.get("Runtimes") or {}).keys())))
    finally:
        client.close()
    return out


def _sandbox(settings: Settings, runtimes: list[str]) -> Finding:
    from greengrader.grading.executors.sandbox import choose

    listing = ", ".join(runtimes) or "none listed"
    try:
        choice = choose(settings, runtimes)
    except GreengraderError as exc:
        return Finding("sandbox", Verdict.FAIL, f"{exc} (runtimes: {listing})", "sudo scripts/setup-gvisor.sh")
    if choice.warning:
        return Finding("sandbox", Verdict.WARN, f"{choice.warning} (runtimes: {listing})",
                       "sudo scripts/setup-gvisor.sh (Debian's runsc, registered with the daemon)")
    return Finding("sandbox", Verdict.OK, f"{choice.describe()} (runtimes: {listing})")


def check_carbon(settings: Settings, regions: RegionRegistry, now: datetime) -> Finding:
    from greengrader.carbon import AUTO, get_provider, resolve_auto
    from greengrader.carbon.dataset import DatasetProvider

    source = resolve_auto(settings) if settings.carbon_source.strip() == AUTO else settings.carbon_source
    try:
        get_provider(source, settings)
    except GreengraderError as exc:
        return Finding("carbon", Verdict.FAIL, str(exc), "fix GREENGRADER_CARBON_SOURCE (see docs/carbon.md)")
    if "dataset" not in source.split(","):
        return Finding("carbon", Verdict.WARN, f"source {source}: no hourly data imported",
                       "greengrader carbon import FILES (hourly data sets; see docs/carbon.md)")
    provider = DatasetProvider.from_settings(settings)
    zones = sorted({r.zone for r in regions.enabled()})
    missing, ends = [], []
    for zone in zones:
        try:
            ends.append(provider.full(zone).end)
        except GreengraderError:
            missing.append(zone)
    if not ends:
        return Finding("carbon", Verdict.WARN, f"source {source}: no data set covers any region's zone",
                       f"import hourly data for {', '.join(zones)}")
    latest = max(ends)
    age = (now - latest).total_seconds()
    summary = f"source {source}: data up to {latest:%Y-%m-%d %H:%M} UTC"
    if missing:
        return Finding("carbon", Verdict.WARN, f"{summary}; no hourly data for {', '.join(missing)} "
                       "(annual averages there)", f"import hourly data for {', '.join(missing)}")
    if age > STALE_AFTER_S:
        return Finding("carbon", Verdict.WARN, f"{summary} ({age / 86400:.0f} days old: replayed into this year)",
                       "import recent data, or use a live provider (GREENGRADER_CARBON_SOURCE=watttime,...)")
    return Finding("carbon", Verdict.OK, summary)


def check_workers(settings: Settings, regions: RegionRegistry, engine: Engine, db_ok: bool,
                  now: datetime) -> Finding:
    if not db_ok:
        return Finding("workers", Verdict.WARN, "not checked (database unusable)")
    try:
        with Session(engine) as session:
            found = health.check_workers(session, settings, regions, now)
    except SQLAlchemyError as exc:
        return Finding("workers", Verdict.WARN, f"cannot read ({type(exc).__name__})")
    if found.state is health.State.OK:
        return Finding("workers", Verdict.OK, found.summary.removeprefix("workers ") + " live")
    return Finding("workers", Verdict.WARN if found.state is health.State.WARNING else Verdict.FAIL, found.summary,
                   "start one per region: celery -A greengrader worker -Q region-<name>")


def check_pseudonym_key(settings: Settings) -> Finding:
    if not settings.pseudonymise:
        return Finding("pseudonym key", Verdict.WARN, "pseudonymisation is off: names and emails are stored",
                       "unset GREENGRADER_PSEUDONYMISE unless that is intended")
    if settings.pseudonym_key is not None:
        return Finding("pseudonym key", Verdict.OK, "GREENGRADER_PSEUDONYM_KEY set")
    if settings.embedded:
        return Finding("pseudonym key", Verdict.OK, f"embedded default: a random key of this machine's ({settings.pseudonym_key_file})")
    return Finding("pseudonym key", Verdict.FAIL, "GREENGRADER_PSEUDONYM_KEY not set (the bridge refuses to start)",
                   "export GREENGRADER_PSEUDONYM_KEY=$(openssl rand -hex 32), the same on every bridge")


def check_removed_variables(environ: Mapping[str, str]) -> list[Finding]:
    """A warning per variable still set that is now a constant of the code (none: no line)."""
    return [Finding("variables", Verdict.WARN, f"{var} is ignored: it was removed ({why})", f"unset {var}")
            for var, why in REMOVED_VARIABLES.items() if var in environ]


def run_doctor(settings: Settings, regions: RegionRegistry, now: datetime | None = None) -> list[Finding]:
    now = now or datetime.now(UTC)
    engine = health.health_engine(settings)
    try:
        db = check_database(settings, engine)
        steps: list[Callable[[], Finding | list[Finding]]] = [
            lambda: check_broker(settings),
            lambda: check_mqtt(settings),
            lambda: check_docker(settings),
            lambda: check_carbon(settings, regions, now),
            lambda: check_workers(settings, regions, engine, db.verdict is Verdict.OK, now),
            lambda: check_pseudonym_key(settings),
            lambda: check_removed_variables(os.environ),
        ]
        findings = [db]
        for step in steps:
            result = step()
            findings.extend(result if isinstance(result, list) else [result])
    finally:
        engine.dispose()
    return findings
