"""Pure parts of the dashboard: redirects after login, output caps, test comparison,
filters, number formatting and the finished-days cache."""

from __future__ import annotations

from datetime import date

import pytest

from greengrader.web.comparison import side_by_side
from greengrader.web.detail import capped_tail
from greengrader.web.filters import agreement, grams, short_time
from greengrader.web.listing import BadFilter, Filters
from greengrader.web.overview import PastDays
from greengrader.web.schemas import CarbonDay
from greengrader.web.security import safe_next


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil", "", None, "javascript:x"])
def test_login_never_redirects_off_site(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_login_keeps_a_local_path() -> None:
    assert safe_next("/submissions/7?done=x") == "/submissions/7?done=x"


def test_output_is_capped_to_its_tail_on_a_character_boundary() -> None:
    text = "début " + "é" * 100 + " fin"
    tail, cut = capped_tail(text, 11)
    assert cut and tail.endswith(" fin") and len(tail.encode()) <= 11
    assert capped_tail("short", 100) == ("short", False)
    assert capped_tail(None, 10) == ("", False)


def test_tests_are_matched_by_name_and_differences_flagged() -> None:
    ours = [{"name": "a", "score": 1, "max_score": 1}, {"name": "b", "score": 0, "max_score": 1}]
    theirs = [{"name": "b", "score": 1, "max_score": 1, "status": "passed"}, {"name": "c", "score": 2}]
    rows = {r.name: r for r in side_by_side(ours, theirs)}
    assert list(rows) == ["a", "b", "c"]
    assert rows["a"].same is None and rows["c"].same is None  # only on one side
    assert rows["b"].same is False and rows["b"].ours_status == "failed" and rows["b"].gradescope_status == "passed"
    assert side_by_side("not a list", None) == []


def test_filters_reject_unknown_values_with_a_clear_message() -> None:
    with pytest.raises(BadFilter, match="unknown status 'bogus'"):
        Filters(status="bogus")
    with pytest.raises(BadFilter, match="agreement must be one of"):
        Filters(agreement="maybe")
    assert Filters(status="graded", q=5, before=9).as_dict() == {"status": "graded", "q": "5"}


def test_formatting_reads_without_colour() -> None:
    assert (agreement(True), agreement(False), agreement(None)) == ("✓ agrees", "✗ differs", "— unknown")
    assert grams(0.000254) == "0.000254 g" and grams(12345.0) == "12.3 kg" and grams(None) == "—"
    assert short_time("2026-12-01T11:09:40.311642+00:00") == "2026-12-01 11:09"


def test_finished_days_are_reused_until_they_expire() -> None:
    now = [0.0]
    cache = PastDays(ttl_s=60, today_ttl_s=5, clock=lambda: now[0])
    calls: list[int] = []

    def compute() -> list[CarbonDay]:
        calls.append(1)
        return [CarbonDay(day="2026-11-30", emitted_g=1.0, baseline_g=2.0, jobs=1)]

    key = (None, "us-west", date(2026, 12, 1), False)
    today = (None, "us-west", date(2026, 12, 1), True)
    assert cache.get(key, compute) == cache.get(key, compute)
    cache.get(today, compute)
    assert len(calls) == 2
    now[0] = 6.0  # today's totals expire first
    cache.get(key, compute)
    cache.get(today, compute)
    assert len(calls) == 3
    now[0] = 61.0
    cache.get(key, compute)
    assert len(calls) == 4
    cache.get(((1, 2), "us-west", key[2], False), compute)  # another scope is computed apart
    assert len(calls) == 5
