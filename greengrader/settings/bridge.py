"""The bridge's batches and what it keeps of a rejected payload; see docs/bridge.md."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BridgeSettings(BaseModel):
    bridge_batch_size: int = Field(default=50, ge=1, le=1000)
    quarantine_keep_bytes: int = Field(default=1024 * 1024, ge=0)
