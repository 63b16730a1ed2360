"""Caps on one payload: what a hostile zip can cost before it is rejected."""

from __future__ import annotations

from dataclasses import dataclass

from greengrader.settings import Settings

# Caps on the small JSON members we decode ourselves (they are metadata, not student work).
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_HOSTNAME_CHARS = 300
# Gradescope's metadata nests about five levels; deeper JSON only serves to exhaust the
# recursion limit of the code that copies or re-serialises it (pseudonymisation, jsonb).
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Limits:
    """Caps applied to one payload (defaults from :class:`Settings`)."""

    max_payload_bytes: int = 64 * 1024 * 1024
    max_uncompressed_bytes: int = 512 * 1024 * 1024
    max_compression_ratio: float = 200.0
    max_zip_entries: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_payload_bytes=settings.max_payload_bytes,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
            max_zip_entries=settings.max_zip_entries,
        )
