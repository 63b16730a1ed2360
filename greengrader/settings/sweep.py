"""The beat sweep: re-sending, recovering and re-placing work that lost its way."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SweepSettings(BaseModel):
    sweep_interval_s: float = Field(default=15.0, gt=0)
    sweep_batch: int = Field(default=100, ge=1)
    received_grace_s: float = Field(default=60.0, ge=0)
    stuck_margin_s: float = Field(default=120.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    # A region whose workers have all been silent this long past the heartbeat limit is
    # dead: its waiting jobs are placed again on live regions.
    region_dead_after_s: float = Field(default=30.0, ge=0)
