"""Why a payload is rejected: the ``reason`` of every :class:`~greengrader.errors.PayloadRejected`
the payload parser raises (stored with the quarantined payload and counted in metrics)."""

from __future__ import annotations

REASONS = frozenset(
    {
        "empty",
        "too_large",
        "not_zip",
        "corrupt_zip",
        "too_many_entries",
        "unsafe_path",
        "duplicate_entry",
        "symlink",
        "encrypted",
        "unsupported_compression",
        "zip_bomb",
        "overlapping_entries",
        "missing_metadata",
        "invalid_metadata",
        "missing_id",
        "wrong_type",
        "missing_source",
    }
)
