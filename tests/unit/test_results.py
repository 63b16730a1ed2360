"""results.json parsing by the Gradescope spec, and agreement with Gradescope's score."""

from __future__ import annotations

import pytest

from greengrader.errors import InvalidResults
from greengrader.grading.results import agrees, gradescope_score, parse_results


def test_top_level_score_wins_over_the_sum_of_tests() -> None:
    parsed = parse_results({"score": 7, "tests": [{"score": 1, "max_score": 5}, {"score": 2, "max_score": 5}]})
    assert (parsed.score, parsed.max_score) == (7.0, 10.0)


def test_score_is_the_sum_of_test_scores_when_absent() -> None:
    parsed = parse_results({"tests": [{"score": 2.5, "max_score": 2.5, "name": "a"}, {"score": "1", "max_score": 2.5}]})
    assert parsed.score == 3.5
    assert [t["status"] for t in parsed.tests] == ["passed", "failed"]  # derived when missing


def test_max_score_falls_back_to_the_assignment_total() -> None:
    assert parse_results({"score": 4}, total_points=10.0).max_score == 10.0


def test_output_execution_time_and_leaderboard_are_kept() -> None:
    parsed = parse_results({"score": 1, "output": "hi", "execution_time": "1.5",
                            "leaderboard": [{"name": "time", "value": 3, "order": "asc"}, "junk"]})
    assert (parsed.output, parsed.execution_time) == ("hi", 1.5)
    assert parsed.leaderboard == [{"name": "time", "value": 3, "order": "asc"}]


def test_long_test_output_is_truncated() -> None:
    parsed = parse_results({"tests": [{"score": 0, "output": "x" * 50_000}]})
    assert len(parsed.tests[0]["output"]) < 21_000 and parsed.tests[0]["output"].endswith("[output truncated]")


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"tests": []},
        {"tests": [{"name": "no score"}]},
        {"score": "ten"},
        {"score": True},
        {"score": float("nan")},
        {"tests": "not a list"},
        {"tests": ["not an object"]},
        {"score": 1, "leaderboard": {"a": 1}},
    ],
)
def test_invalid_results_are_rejected_with_a_reason(data: dict[str, object]) -> None:
    with pytest.raises(InvalidResults):
        parse_results(data)


def test_agreement_is_within_a_hundredth() -> None:
    assert agrees(10.0, 10.0) is True
    assert agrees(6.0, 6.01) is True
    assert agrees(6.0, 6.02) is False
    assert agrees(None, 6.0) is None and agrees(6.0, None) is None


def test_gradescope_score_of_a_payload_results_json() -> None:
    assert gradescope_score({"tests": [{"score": 2}, {"score": 3}]}) == 5.0
    assert gradescope_score({"output": "The autograder failed"}) is None
    assert gradescope_score(None) is None
