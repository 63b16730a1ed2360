"""GreenGrader's own Prometheus metrics (prometheus-client).

Counters are process-local; each long-running process (bridge, worker, CAS) exposes
them with :func:`serve_metrics`. Gauges that describe the database (jobs by status,
queue depth) are filled at scrape time by the ``greengrader metrics`` exporter.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PAYLOADS = Counter(
    "greengrader_payloads_total",
    "Payloads handled by the bridge, by outcome (received, duplicate, quarantined)",
    ["outcome"],
)
PUBLISH_TO_COMMIT = Histogram(
    "greengrader_publish_to_commit_seconds",
    "Latency from MQTT receipt (or publish time when the payload carries it) to commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISIONS = Counter(
    "greengrader_decisions_total", "Scheduling decisions by policy and fallback", ["policy", "fallback"]
)
GRADES = Counter("greengrader_grades_total", "Grades finished, by outcome and region", ["outcome", "region"])
CARBON_EMITTED_G = Counter(
    "greengrader_carbon_emitted_grams_total", "gCO2 emitted by grading, by region", ["region"]
)
CARBON_SAVED_G = Counter(
    "greengrader_carbon_saved_grams_total",
    "gCO2 saved versus the static baseline region (expected at decision time)",
)


def count_decision(policy: str, fallback: str | None, saved_g: float | None) -> None:
    """One stored decision; ``saved_g``: expected gCO2 saved versus the static region (a
    negative expected saving is not counted: the counter only grows)."""
    DECISIONS.labels(policy, fallback or "").inc()
    if saved_g is not None and saved_g > 0:
        CARBON_SAVED_G.inc(saved_g)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Expose this process's metrics on ``addr:port`` (bind to localhost by default)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr)
