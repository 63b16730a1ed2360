"""``greengrader metrics serve``: Prometheus gauges computed from the database at scrape time.

The per-process counters in :mod:`greengrader.ops.metrics` live in the bridge, workers and CAS;
this exporter adds what only the shared state knows: jobs by status, quarantined payloads,
queue depth per region (Redis ``LLEN``), live workers, the bridge's last message and gCO2
emitted and saved versus the static baseline region. It serves behind HTTP basic auth, or
without auth only on a loopback address.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from greengrader.context import Context
from greengrader.errors import ConfigError
from greengrader.ops import observe

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DatabaseCollector(Collector):
    """Collects GreenGrader's gauges from the database and broker on every scrape."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "greengrader_exporter_source_up", "Whether the exporter could read a source", labels=["source"]
        )
        yield from self._database_metrics(up)
        yield from self._broker_metrics(up)
        yield up

    def _database_metrics(self, up: GaugeMetricFamily) -> Iterator[Metric]:
        settings = self.ctx.settings
        baseline = settings.baseline_region or settings.default_region
        now = self.ctx.now()
        try:
            with Session(self.ctx.db.engine) as session:
                statuses = observe.status_counts(session)
                quarantined = observe.quarantine_counts(session)
                last = observe.last_message_at(session)
                oldest = observe.oldest_unscheduled_at(session)
                regions = [r.name for r in self.ctx.regions.enabled()]
                alive = observe.workers_alive(session, regions, now, settings.health_heartbeat_max_age_s)
                carbon = observe.carbon_totals(session, baseline)
        except SQLAlchemyError:
            log.warning("metrics: database unreadable", exc_info=True)
            up.add_metric(["database"], 0)
            return
        up.add_metric(["database"], 1)
        yield _labelled("greengrader_jobs", "Submissions by status", "status", statuses)
        yield _labelled(
            "greengrader_quarantined_payloads", "Quarantined payloads by reason", "reason", quarantined
        )
        yield _labelled("greengrader_workers_alive", "Workers with a recent heartbeat", "region", alive)
        yield _single(
            "greengrader_last_message_timestamp_seconds",
            "Unix time the bridge last stored a payload (0 when none)",
            last.timestamp() if last else 0.0,
        )
        yield _single(
            "greengrader_oldest_unscheduled_age_seconds",
            "Age of the oldest submission awaiting a scheduling decision (0 when none)",
            (now - oldest).total_seconds() if oldest else 0.0,
        )
        yield _labelled(
            "greengrader_carbon_emitted_grams", "Measured gCO2 emitted by grading", "region", carbon.emitted_g
        )
        saved = GaugeMetricFamily(
            "greengrader_carbon_saved_grams",
            "gCO2 saved versus running every job in the baseline region",
            labels=["baseline", "basis"],
        )
        saved.add_metric([baseline, "measured"], carbon.saved_g)
        saved.add_metric([baseline, "expected"], carbon.expected_saved_g)
        yield saved
        yield _single(
            "greengrader_carbon_baseline_grams",
            "gCO2 the graded jobs would have emitted in the baseline region",
            carbon.baseline_g,
        )

    def _broker_metrics(self, up: GaugeMetricFamily) -> Iterator[Metric]:
        settings = self.ctx.settings
        regions = self.ctx.regions.enabled()
        try:
            depths = observe.queue_depths(
                settings.effective_broker_url, [r.queue_name for r in regions], settings.health_timeout_s
            )
        except Exception:  # redis raises its own errors and OS errors: the broker is down
            log.warning("metrics: broker unreadable", exc_info=True)
            up.add_metric(["broker"], 0)
            return
        up.add_metric(["broker"], 1)
        if depths is None:
            return
        depth = GaugeMetricFamily(
            "greengrader_queue_depth", "Grade tasks waiting in each region queue", labels=["region", "queue"]
        )
        for region in regions:
            depth.add_metric([region.name, region.queue_name], depths.get(region.queue_name, 0))
        yield depth


def _labelled(name: str, doc: str, label: str, values: dict[str, int] | dict[str, float]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _single(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


def build_registry(ctx: Context) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(ctx))
    return registry


# --- HTTP serving with basic auth --------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def accepts(self, header: str) -> bool:
        """Constant-time check of an ``Authorization: Basic ...`` header."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return bool(sep) and user_ok and password_ok


def with_basic_auth(app: WSGIApp, credentials: Credentials | None) -> WSGIApp:
    if credentials is None:
        return app

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if credentials.accepts(environ.get("HTTP_AUTHORIZATION", "")):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("WWW-Authenticate", 'Basic realm="greengrader metrics"'), ("Content-Type", "text/plain")],
        )
        return [b"authentication required\n"]

    return guarded


def credentials_from(username: str | None, password: str | None) -> Credentials | None:
    if not username and not password:
        return None
    if not username or not password:
        raise ConfigError(
            "GREENGRADER_METRICS_USERNAME and GREENGRADER_METRICS_PASSWORD must be set together"
        )
    return Credentials(username, password)


def is_loopback(addr: str) -> bool:
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


def make_metrics_server(
    ctx: Context, addr: str, port: int, credentials: Credentials | None
) -> WSGIServer:
    """The exporter's HTTP server (not yet serving); refuses an open non-loopback bind."""
    if credentials is None and not is_loopback(addr):
        raise ConfigError(
            f"GREENGRADER_METRICS_PASSWORD: required to serve metrics on {addr} "
            "(without credentials the exporter binds to a loopback address only)"
        )
    app = with_basic_auth(make_wsgi_app(build_registry(ctx)), credentials)
    return make_server(addr, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
