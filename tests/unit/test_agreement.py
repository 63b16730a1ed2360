"""Per-test comparison with Gradescope: pairing, verdicts, classification, leaderboard."""

from __future__ import annotations

from typing import Any

from greengrader.agreement.compare import TOTAL, Side, compare, pair_tests
from greengrader.agreement.evidence import files_digest, varying


def t(name: str | None, score: float, top: float = 1.0, number: str | None = None) -> dict[str, Any]:
    test: dict[str, Any] = {"score": score, "max_score": top, "status": "passed" if score >= top else "failed"}
    if name is not None:
        test["name"] = name
    if number is not None:
        test["number"] = number
    return test


def test_tests_pair_by_name_then_by_number_whatever_the_order() -> None:
    ours = [t(None, 1, number="2"), t("b", 1), t("a", 0)]
    theirs = [t("a", 1), t("b", 1), t("renamed", 1, number="2"), t("gone", 1)]
    pairs = pair_tests(ours, theirs)
    assert [(k, o is not None, g is not None) for k, o, g in pairs] == [
        ("a", True, True), ("b", True, True), ("renamed", True, True), ("gone", False, True)]
    assert pairs[0][1] is ours[2] and pairs[2][1] is ours[0]


def test_one_differing_test_makes_the_submission_differ_and_is_listed() -> None:
    comparison = compare(Side(2, [t("a", 1), t("b", 1)]), Side(1, [t("a", 1), t("b", 0)]))
    assert comparison.agreement == "differs"
    assert comparison.differing == ["b"]
    row = comparison.tests[1]
    assert row["ours"]["status"] == "passed" and row["gradescope"]["status"] == "failed"


def test_a_known_nondeterministic_test_does_not_count_as_a_disagreement() -> None:
    ours, theirs = Side(7.3, [t("det", 1), t("random", 6.3, 10)]), Side(5.2, [t("det", 1), t("random", 4.2, 10)])
    assert compare(ours, theirs).agreement == "differs"
    comparison = compare(ours, theirs, {"random"})
    assert comparison.agreement == "nondeterministic"
    assert comparison.differing == [] and comparison.tests[1]["verdict"] == "nondeterministic"


def test_equal_tests_agree_within_the_tolerance_and_totals_are_checked() -> None:
    assert compare(Side(1.005, [t("a", 1.005, 2)]), Side(1.0, [t("a", 1.0, 2)])).agreement == "agrees"
    assert compare(Side(1, [{"name": "a", "score": 1.0}]), Side(1, [t("a", 1)])).agreement == "agrees"
    # same tests, different explicit total: a real difference, reported as the total
    comparison = compare(Side(3, [t("a", 1)]), Side(1, [t("a", 1)]))
    assert comparison.agreement == "differs" and comparison.differing == [TOTAL]
    # no tests at all on either side, or Gradescope reports a total only: the totals decide
    assert compare(Side(4), Side(4)).agreement == "agrees"
    assert compare(Side(4, [t("a", 4, 4)]), Side(4)).agreement == "agrees"
    assert compare(Side(3, [t("a", 3, 4)]), Side(4)).differing == [TOTAL]


def test_our_failed_run_differs_in_every_test_and_unknown_without_gradescope() -> None:
    comparison = compare(None, Side(1, [t("a", 1)]))
    assert comparison.agreement == "differs" and comparison.tests[0]["ours"] is None
    assert compare(Side(1, [t("a", 1)]), None).agreement is None


def test_leaderboard_is_compared_separately() -> None:
    ours = Side(1, [t("a", 1)], [{"name": "time", "value": 3.0}])
    theirs = Side(1, [t("a", 1)], [{"name": "time", "value": 2.0}])
    comparison = compare(ours, theirs)
    assert comparison.agreement == "agrees"
    assert comparison.leaderboard_agrees is False and comparison.leaderboard[0]["ours"] == 3.0


def test_varying_finds_tests_whose_outcome_changes_between_runs() -> None:
    runs = [Side(0, [t("det", 1), t("random", 3.3, 10)]), Side(0, [t("det", 1), t("random", 8.1, 10)])]
    found = varying(runs, "runs")
    assert list(found) == ["random"] and "3.3" in found["random"] and "8.1" in found["random"]
    assert varying([runs[0], runs[0]], "runs") == {}


def test_files_digest_covers_student_files_only() -> None:
    a = {"submission/x.py": b"1", "submission_metadata.json": b"{\"id\": 1}"}
    b = {"submission/x.py": b"1", "submission_metadata.json": b"{\"id\": 2}"}
    assert files_digest(a) == files_digest(b)
    assert files_digest(a) != files_digest({**a, "submission/x.py": b"2"})
