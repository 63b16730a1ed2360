"""The Prometheus exporter (``greengrader metrics serve``) and its savings baseline."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


class MetricsSettings(BaseModel):
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=1, le=65535)
    metrics_username: str | None = None
    metrics_password: SecretStr | None = None
    metrics_password_file: Path | None = None
    baseline_region: str | None = None
