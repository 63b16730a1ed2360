"""Settings from the environment (prefix ``GREENGRADER_``) with an embedded default.

With nothing set, GreenGrader runs with no servers at all: a SQLite file in the user's
data directory holds the data, and Celery uses kombu's filesystem transport in a folder
beside it. The distributed configuration sets ``GREENGRADER_DATABASE_URL``
(Postgres) and ``GREENGRADER_BROKER_URL`` (Redis).
"""

from __future__ import annotations

import difflib
import logging
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from greengrader.errors import ConfigError

_URL_SCHEMES_DB = ("postgresql", "postgresql+psycopg2", "sqlite")
_URL_SCHEMES_BROKER = ("redis", "rediss", "amqp", "pyamqp", "sqla+sqlite", "sqla+postgresql", "filesystem", "memory")


log = logging.getLogger(__name__)
MIN_PSEUDONYM_KEY_CHARS = 16
# Keys that were ever published (the old built-in default).
_PUBLIC_KEYS = frozenset({"greengrader-default-pseudonym-key"})


def data_dir() -> Path:
    """Per-user data directory for the embedded default."""
    return Path(platformdirs.user_data_dir("greengrader", appauthor=False))


class Settings(BaseSettings):
    """All runtime configuration. Every field maps to ``GREENGRADER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="GREENGRADER_", extra="ignore")

    # Storage and queues
    database_url: str = ""
    broker_url: str = ""
    result_backend: str | None = None
    home: Path = Field(default_factory=data_dir)

    # MQTT
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_topic: str = "submissions"
    mqtt_client_id: str = "greengrader-bridge"
    mqtt_shared_group: str | None = None
    mqtt_keepalive_s: int = Field(default=30, ge=5)
    mqtt_receipt_topic: str = "receipts"
    mqtt_workers_topic: str = "workers/register"
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=60)
    mqtt_receive_maximum: int = Field(default=200, ge=1, le=65535)
    bridge_batch_size: int = Field(default=50, ge=1, le=1000)
    bridge_prepare_workers: int = Field(default=1, ge=0, le=64)
    quarantine_keep_bytes: int = Field(default=1024 * 1024, ge=0)

    # Payload validation
    max_payload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_uncompressed_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    max_zip_entries: int = Field(default=10_000, ge=1)
    pseudonymise: bool = True
    pseudonym_key: SecretStr | None = None

    # Scheduling and carbon
    cas_url: str | None = None
    cas_timeout_s: float = Field(default=5.0, gt=0)
    policy: str = "spatio-temporal"
    default_region: str = "us-west"
    regions_file: Path | None = None
    carbon_source: str = "auto"
    carbon_data_dir: Path | None = None
    forecast: str = "blend"
    forecast_margin: float = Field(default=0.25, ge=0)
    max_delay_s: int = Field(default=0, ge=0)
    default_runtime_s: float = Field(default=60.0, gt=0)
    pue: float = Field(default=1.2, ge=1.0)

    # Carbon data (see docs/carbon.md)
    carbon_step_s: int = Field(default=3600, ge=60)
    carbon_emission_factor: Literal["lifecycle", "direct"] = "lifecycle"
    carbon_clock: datetime | None = None
    carbon_http_timeout_s: float = Field(default=10.0, gt=0)
    carbon_http_retries: int = Field(default=3, ge=1)
    carbon_cache_ttl_s: float = Field(default=300.0, ge=0)
    watttime_url: str = "https://api.watttime.org"
    watttime_username: str | None = None
    watttime_password: SecretStr | None = None
    electricitymaps_url: str = "https://api.electricitymap.org"
    electricitymaps_token: SecretStr | None = None
    carbon_aware_sdk_url: str | None = None
    cpu_model: str | None = None
    cpu_tdp_w: float | None = Field(default=None, gt=0)
    memory_w_per_gb: float = Field(default=0.375, ge=0)

    # Beat sweep
    sweep_interval_s: float = Field(default=15.0, gt=0)
    received_grace_s: float = Field(default=60.0, ge=0)
    stuck_margin_s: float = Field(default=120.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    # A region whose workers have all been silent this long past the heartbeat limit is
    # dead: its waiting jobs are placed again on live regions.
    region_dead_after_s: float = Field(default=30.0, ge=0)
    sweep_batch: int = Field(default=100, ge=1)

    # Placement (see docs/scheduling.md)
    policy_seed: int = 0
    capacity_aware: bool = True
    queue_aware: bool = True
    queue_wait_penalty: float = Field(default=50.0, ge=0)
    schedule_watts_per_core: float = Field(default=5.0, gt=0)
    forecast_cache_s: float = Field(default=60.0, ge=0)
    cas_retries: int = Field(default=2, ge=1)

    # Grading
    executor: str = "docker"
    base_image: str = "greengrader/autograder-base:bookworm"
    grade_timeout_s: int = Field(default=600, ge=1, le=2400)
    grade_memory_mb: int = Field(default=768, ge=64)
    grade_cpus: float = Field(default=1.0, gt=0)
    grade_pids_limit: int = Field(default=256, ge=16)
    grade_disk_mb: int = Field(default=1024, ge=16)
    grade_fsize_mb: int = Field(default=256, ge=1)
    grade_nofile: int = Field(default=1024, ge=64)
    grade_strict: bool = False
    grade_stdout_bytes: int = Field(default=1 << 20, ge=1024)
    grade_results_bytes: int = Field(default=1 << 20, ge=1024)
    grade_disk_poll_s: float = Field(default=1.0, gt=0)
    # gVisor by default where the daemon has it (see docs/grading.md, "Sandbox")
    sandbox: Literal["auto", "gvisor", "runc"] = "auto"
    gvisor_runtime: str = Field(default="runsc", min_length=1)
    # Agreement with Gradescope (see docs/grading.md, "Agreement")
    agreement_regrades: int = Field(default=2, ge=0, le=10)
    build_ca_bundle: Path | None = Path("/etc/ssl/certs/ca-certificates.crt")
    image_prefix: str = "greengrader/assignment"
    # Bound on one image build (setup.sh); it never counts against the grading limit.
    image_build_timeout_s: int = Field(default=900, ge=10, le=7200)

    # Worker registry
    worker_heartbeat_s: float = Field(default=20.0, ge=5, le=300)

    # Health checks (`greengrader health`, Nagios thresholds; 0 disables an age threshold)
    health_timeout_s: float = Field(default=5.0, gt=0)
    health_heartbeat_max_age_s: float = Field(default=90.0, gt=0)
    health_min_workers_per_region: int = Field(default=1, ge=0)
    health_message_age_warn_s: float = Field(default=0.0, ge=0)
    health_message_age_crit_s: float = Field(default=0.0, ge=0)
    health_unscheduled_warn_s: float = Field(default=300.0, ge=0)
    health_unscheduled_crit_s: float = Field(default=1800.0, ge=0)
    health_backlog_warn: int = Field(default=1000, ge=0)
    health_backlog_crit: int = Field(default=10000, ge=0)
    health_check_mqtt: bool = True
    health_check_docker: bool = True

    # Metrics exporter (`greengrader metrics serve`)
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=1, le=65535)
    metrics_username: str | None = None
    metrics_password: SecretStr | None = None
    metrics_password_file: Path | None = None
    baseline_region: str | None = None

    # Dashboard (`greengrader web`, see docs/dashboard.md)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    web_secret_key: SecretStr | None = None
    web_secret_key_file: Path | None = None
    web_cookie_secure: bool = False
    web_session_max_age_s: int = Field(default=8 * 3600, ge=60)
    web_login_max_failures: int = Field(default=5, ge=1)
    web_login_window_s: float = Field(default=300.0, gt=0)
    web_page_size: int = Field(default=50, ge=1, le=500)
    web_output_cap_bytes: int = Field(default=64 * 1024, ge=1024)
    web_poll_interval_ms: int = Field(default=1000, ge=200, le=60_000)

    # Kubernetes executor
    k8s_namespace: str = "greengrader"
    k8s_context: str | None = None
    k8s_region_label: str = "topology.kubernetes.io/region"
    k8s_tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [
            {"key": "greengrader.io/grading", "operator": "Exists", "effect": "NoSchedule"}
        ]
    )
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    k8s_ttl_s: int = Field(default=300, ge=0)
    k8s_start_grace_s: int = Field(default=120, ge=0)
    k8s_watch_timeout_s: int = Field(default=60, ge=1)
    k8s_runtime_class: str | None = None
    k8s_run_as_user: int = Field(default=1000, ge=1)
    k8s_max_secret_bytes: int = Field(default=900 * 1024, ge=1024, le=1024 * 1024)

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: str) -> str:
        if value and not value.startswith(tuple(s + ":" for s in _URL_SCHEMES_DB)):
            raise ValueError(f"unsupported database URL scheme (use one of {', '.join(_URL_SCHEMES_DB)})")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if value and not value.startswith(tuple(s + ":" for s in _URL_SCHEMES_BROKER)):
            raise ValueError(f"unsupported broker URL scheme (use one of {', '.join(_URL_SCHEMES_BROKER)})")
        return value

    @field_validator("pseudonym_key")
    @classmethod
    def _check_pseudonym_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if "CHANGE_ME" in secret.upper() or secret in _PUBLIC_KEYS:
            raise ValueError("still the placeholder from the example: set a secret (e.g. `openssl rand -hex 32`)")
        if len(secret) < MIN_PSEUDONYM_KEY_CHARS:
            raise ValueError(f"too short to resist a dictionary attack: use at least {MIN_PSEUDONYM_KEY_CHARS} "
                             "random characters (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def embedded(self) -> bool:
        """True when no database server is configured (SQLite default)."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'greengrader.db'}"

    @property
    def effective_broker_url(self) -> str:
        # kombu's filesystem transport: no server, and unlike the SQLAlchemy transport it
        # implements fanout, so `celery inspect ping`, remote control and Flower work.
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        """Where the embedded (filesystem) broker keeps its messages."""
        return self.home / "broker"

    def web_secret(self) -> str | None:
        """The key that signs dashboard session cookies (variable or file; never logged)."""
        if self.web_secret_key is not None:
            return self.web_secret_key.get_secret_value()
        if self.web_secret_key_file is not None:
            return self.web_secret_key_file.read_text().strip()
        return None

    def mqtt_secret(self) -> str | None:
        """The MQTT password from the variable or the password file (never logged)."""
        if self.mqtt_password is not None:
            return self.mqtt_password.get_secret_value()
        if self.mqtt_password_file is not None:
            return self.mqtt_password_file.read_text().strip()
        return None


    @property
    def pseudonym_key_file(self) -> Path:
        """Where the embedded default keeps its generated pseudonym key."""
        return self.home / "pseudonym.key"

    def pseudonym_secret(self) -> bytes:
        """The HMAC key for pseudonyms.

        There is no built-in key: a public one would let anyone recover names and emails
        by hashing a list of candidates. The embedded default generates a random key once
        (``<home>/pseudonym.key``, mode 0600); a deployment with a database server must
        set ``GREENGRADER_PSEUDONYM_KEY``, the same on every bridge.
        """
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        if not self.embedded:
            raise ConfigError(
                "GREENGRADER_PSEUDONYM_KEY: not set, and pseudonymisation is on: set the same secret on every "
                "bridge (e.g. `openssl rand -hex 32`), or GREENGRADER_PSEUDONYMISE=false"
            )
        return _embedded_key(self.pseudonym_key_file)


def _embedded_key(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


# GREENGRADER_* variables that are not settings (read by the test suite and scripts).
NON_SETTING_VARIABLES = frozenset({"GREENGRADER_SHARED_DIR"})
NON_SETTING_PREFIXES = ("GREENGRADER_TEST_", "GREENGRADER_FAULTS_", "GREENGRADER_FUZZ_", "GREENGRADER_HYPOTHESIS_",
                        "GREENGRADER_SCHEMATHESIS_", "GREENGRADER_K8S_TEST_")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``GREENGRADER_*`` variable that no setting reads (a typo is silent otherwise)."""
    known = {f"GREENGRADER_{name.upper()}" for name in Settings.model_fields}
    out = []
    for var in sorted(environ):
        if not var.startswith("GREENGRADER_") or var in known or var in NON_SETTING_VARIABLES \
                or var.startswith(NON_SETTING_PREFIXES):
            continue
        close = difflib.get_close_matches(var, known, n=1)
        out.append(f"unknown variable {var} is ignored" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


def load_settings(**overrides: object) -> Settings:
    """Build settings; a validation error becomes a one-line :class:`ConfigError`."""
    for warning in unknown_variables(os.environ):
        log.warning("greengrader: %s", warning)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(f"GREENGRADER_{field.upper()}: {first['msg'].removeprefix('Value error, ')}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return load_settings()

