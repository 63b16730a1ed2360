"""Carbon data: which provider answers, its data sets, HTTP APIs and forecast; see docs/carbon.md."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class CarbonSettings(BaseModel):
    carbon_source: str = "auto"
    carbon_data_dir: Path | None = None
    forecast: str = "blend"
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
