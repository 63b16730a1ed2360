"""Worker registry hooks: register at ``worker_ready``, heartbeat while alive."""

from __future__ import annotations
