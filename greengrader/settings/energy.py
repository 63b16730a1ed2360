"""The energy model: what a grading run is taken to draw, before carbon intensity applies."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EnergySettings(BaseModel):
    pue: float = Field(default=1.2, ge=1.0)
    cpu_model: str | None = None
    cpu_tdp_w: float | None = Field(default=None, gt=0)
    memory_w_per_gb: float = Field(default=0.375, ge=0)
