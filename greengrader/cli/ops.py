"""``greengrader health`` (Nagios plugin) and ``greengrader metrics`` (Prometheus exporter)."""

from __future__ import annotations

import json
import sys

import click

from greengrader.errors import ConfigError
from greengrader.settings import Settings, get_settings


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def health(as_json: bool) -> None:
    """Check every part; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios plugin)."""
    from greengrader.ops.health import State, run_health
    from greengrader.regions.registry import load_regions

    try:
        settings = get_settings()
        regions = load_regions(settings.regions_file)
    except ConfigError as exc:
        _emit_unknown(f"configuration: {exc}", as_json)
        raise SystemExit(int(State.UNKNOWN)) from None
    report = run_health(settings, regions)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.status_line())
    raise SystemExit(int(report.state))


def _emit_unknown(reason: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"state": "UNKNOWN", "exit_code": 3, "checks": [], "error": reason}))
    else:
        click.echo(f"GREENGRADER UNKNOWN - {reason}")


@click.group("metrics")
def metrics_group() -> None:
    """GreenGrader's Prometheus metrics (gauges read from the database and broker)."""


@metrics_group.command("serve")
@click.option("--addr", default=None, help="Bind address (default GREENGRADER_METRICS_ADDR).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default GREENGRADER_METRICS_PORT).")
def serve(addr: str | None, port: int | None) -> None:
    """Serve /metrics; basic auth when GREENGRADER_METRICS_USERNAME/PASSWORD are set."""
    from greengrader.context import Context
    from greengrader.ops.exporter import credentials_from, make_metrics_server

    settings = get_settings()
    credentials = credentials_from(settings.metrics_username, metrics_secret(settings))
    bind, listen = addr or settings.metrics_addr, port or settings.metrics_port
    server = make_metrics_server(Context.from_settings(settings), bind, listen, credentials)
    auth = "basic auth" if credentials else "no auth (loopback only)"
    click.echo(f"serving metrics on http://{bind}:{server.server_port}/metrics ({auth})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@metrics_group.command("show")
def show() -> None:
    """Print the current metrics once (Prometheus text format)."""
    from prometheus_client import generate_latest

    from greengrader.context import Context
    from greengrader.ops.exporter import build_registry

    sys.stdout.write(generate_latest(build_registry(Context.from_settings(get_settings()))).decode())


def metrics_secret(settings: Settings) -> str | None:
    """The exporter's password from the variable or its file (never logged)."""
    if settings.metrics_password is not None:
        return settings.metrics_password.get_secret_value()
    if settings.metrics_password_file is not None:
        try:
            return settings.metrics_password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"GREENGRADER_METRICS_PASSWORD_FILE: {exc.strerror}") from None
    return None


def register(group: click.Group) -> None:
    group.add_command(health)
    group.add_command(metrics_group)
