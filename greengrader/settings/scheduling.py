"""Placement: regions, the policy, its carbon-aware inputs and the CAS; see docs/scheduling.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class SchedulingSettings(BaseModel):
    regions_file: Path | None = None
    default_region: str = "us-west"
    policy: str = "spatio-temporal"
    policy_seed: int = 0
    max_delay_s: int = Field(default=0, ge=0)
    default_runtime_s: float = Field(default=60.0, gt=0)
    forecast_margin: float = Field(default=0.25, ge=0)
    capacity_aware: bool = True
    queue_aware: bool = True
    queue_wait_penalty: float = Field(default=50.0, ge=0)
    schedule_watts_per_core: float = Field(default=5.0, gt=0)
    cas_url: str | None = None
    cas_timeout_s: float = Field(default=5.0, gt=0)
    cas_retries: int = Field(default=2, ge=1)
