"""Decisions and expected savings reach the Prometheus counters."""

from __future__ import annotations

from prometheus_client import REGISTRY

from greengrader.ops.metrics import count_decision


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_count_decision_increments_decisions_and_saved_grams() -> None:
    labels = {"policy": "spatio-temporal", "fallback": ""}
    before, saved = _value("greengrader_decisions_total", labels), _value("greengrader_carbon_saved_grams_total")
    count_decision("spatio-temporal", None, 2.5)
    count_decision("spatio-temporal", None, -1.0)  # dirtier than static: not a saving
    count_decision("spatio-temporal", None, None)
    assert _value("greengrader_decisions_total", labels) == before + 3
    assert _value("greengrader_carbon_saved_grams_total") == saved + 2.5
