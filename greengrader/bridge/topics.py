"""The bridge's MQTT topics: what it subscribes to and where it publishes receipts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greengrader.bridge.records import IngestOutcome
    from greengrader.settings import Settings

LEGACY_COURSE = "default"


def subscriptions(settings: Settings) -> list[str]:
    """The submissions topics (legacy and per course) and the worker registration topic."""
    base = settings.mqtt_topic
    topics = [base, f"{base}/+", settings.mqtt_workers_topic]
    if settings.mqtt_shared_group:
        return [f"$share/{settings.mqtt_shared_group}/{t}" for t in topics]
    return topics


def course_of(settings: Settings, topic: str) -> str:
    """``submissions/<course>`` → ``<course>``; the legacy ``submissions`` → ``default``."""
    base = settings.mqtt_topic
    if topic.startswith(base + "/"):
        return topic[len(base) + 1 :] or LEGACY_COURSE
    return LEGACY_COURSE


def receipt_topic(settings: Settings, outcome: IngestOutcome) -> str:
    course = course_of(settings, outcome.topic or settings.mqtt_topic)
    ident = outcome.gradescope_id if outcome.gradescope_id is not None else f"sha256-{outcome.sha256[:16]}"
    return f"{settings.mqtt_receipt_topic}/{course}/{ident}"
