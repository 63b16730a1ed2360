"""What flows through ingestion: a prepared payload (:class:`Accepted` or :class:`Rejected`,
from :func:`~greengrader.bridge.ingest.prepare`) and the outcome of storing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from greengrader.payload.parse import ParsedPayload

OutcomeStatus = Literal["received", "duplicate", "quarantined"]


@dataclass(frozen=True)
class Accepted:
    """A valid payload ready to store (``data`` and ``metadata`` already pseudonymised)."""

    parsed: ParsedPayload
    data: bytes
    metadata: dict[str, Any]
    users: list[dict[str, Any]]
    topic: str | None


@dataclass(frozen=True)
class Rejected:
    """A payload that failed validation, kept in quarantine with its reason."""

    reason: str
    detail: str
    data: bytes
    sha256: str
    topic: str | None
    gradescope_id: int | None = None


Prepared = Accepted | Rejected


@dataclass(frozen=True)
class IngestOutcome:
    status: OutcomeStatus
    sha256: str
    topic: str | None
    submission_id: int | None = None
    gradescope_id: int | None = None
    quarantine_id: int | None = None
    reason: str | None = None

    def receipt(self) -> dict[str, Any]:
        """The JSON body published on the receipt topic (no student data)."""
        return {"submission_id": self.submission_id, "status": self.status, "reason": self.reason}
