"""Instants: the one parser for the ISO 8601 times GreenGrader reads, and UTC checks.

Times arrive from carbon exports, traces, CAS answers, Docker's API and the command
line; all of them go through :func:`parse_instant` so they agree on what a time without
an offset means (UTC) and on what counts as unreadable.
"""

from __future__ import annotations

from datetime import UTC, datetime

from greengrader.errors import CarbonDataError


def as_utc(t: datetime) -> datetime:
    """Return ``t`` in UTC; naive datetimes are rejected (ambiguous across DST)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise CarbonDataError(f"naive datetime {t.isoformat()} (carbon times must be timezone-aware)")
    return t.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601 text; no offset means UTC.

    Accepts a trailing ``Z`` and fractions finer than microseconds (Docker reports
    nanoseconds), which ``datetime.fromisoformat`` rejects; raises ValueError otherwise.
    """
    value = text.strip()
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}" if digits else head + rest
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
