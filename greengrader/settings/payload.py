"""Payload validation: the caps a submission zip must stay under (zip bombs, floods)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PayloadSettings(BaseModel):
    max_payload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_uncompressed_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    max_zip_entries: int = Field(default=10_000, ge=1)
