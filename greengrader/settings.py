"""Settings from the environment (prefix ``GREENGRADER_``) with an embedded default.

With nothing set, GreenGrader runs with no servers at all: a SQLite file in the user's
data directory holds the data, and Celery uses kombu's filesystem transport in a folder
beside it. The distributed configuration sets ``GREENGRADER_DATABASE_URL``
(Postgres) and ``GREENGRADER_BROKER_URL`` (Redis).
"""

from __future__ import annotations

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
    pseudonym_key: SecretStr = SecretStr("greengrader-default-pseudonym-key")

    # Scheduling and carbon
    cas_url: str | None = None
    cas_timeout_s: float = Field(default=5.0, gt=0)
    policy: str = "carbon-optimal"
    default_region: str = "us-west"
    regions_file: Path | None = None
    carbon_source: str = "embedded"
    carbon_data_dir: Path | None = None
    forecast: str = "persistence"
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

    def mqtt_secret(self) -> str | None:
        """The MQTT password from the variable or the password file (never logged)."""
        if self.mqtt_password is not None:
            return self.mqtt_password.get_secret_value()
        if self.mqtt_password_file is not None:
            return self.mqtt_password_file.read_text().strip()
        return None


def load_settings(**overrides: object) -> Settings:
    """Build settings; a validation error becomes a one-line :class:`ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(f"GREENGRADER_{field.upper()}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return load_settings()

