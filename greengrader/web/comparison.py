"""How a submission page compares our result with Gradescope's.

The dashboard takes a :class:`Comparison` as a collaborator. :class:`TotalScoreComparison`
judges agreement on the total score (``Result.agrees``) and lists the tests of both runs
side by side by name, without classifying differences. A per-test classification (e.g.
"nondeterministic" versus "environment") plugs in here by implementing the Protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

from greengrader.models import Result, Submission
from greengrader.web.schemas import ComparisonView, TestRow


class Comparison(Protocol):
    kind: str

    def compare(self, submission: Submission, result: Result | None) -> ComparisonView: ...


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _tests(raw: Any) -> dict[str, dict[str, Any]]:
    """Tests by name (or position when unnamed), in their original order."""
    out: dict[str, dict[str, Any]] = {}
    for i, test in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(test, dict):
            out[str(test.get("name") or f"test {i + 1}")] = test
    return out


def _status(test: dict[str, Any] | None) -> str | None:
    if test is None:
        return None
    status = test.get("status")
    if isinstance(status, str):
        return status
    score, max_score = _number(test.get("score")), _number(test.get("max_score"))
    if score is not None and max_score is not None:
        return "passed" if score >= max_score else "failed"
    return None


def side_by_side(ours: Any, theirs: Any) -> list[TestRow]:
    mine, gs = _tests(ours), _tests(theirs)
    rows = []
    for name in list(mine) + [n for n in gs if n not in mine]:
        a, b = mine.get(name), gs.get(name)
        a_score = _number(a.get("score")) if a else None
        b_score = _number(b.get("score")) if b else None
        same = None if a is None or b is None else (a_score == b_score and _status(a) == _status(b))
        rows.append(TestRow(
            name=name, ours_score=a_score, ours_max=_number(a.get("max_score")) if a else None,
            ours_status=_status(a), gradescope_score=b_score, gradescope_status=_status(b), same=same,
        ))
    return rows


class TotalScoreComparison:
    kind = "total-score"

    def compare(self, submission: Submission, result: Result | None) -> ComparisonView:
        gs = submission.gradescope_score
        theirs = (submission.gradescope_results or {}).get("tests")
        if result is None:
            return ComparisonView(
                kind=self.kind, ours=None, gradescope=gs, agrees=None,
                explanation="not graded by GreenGrader yet", tests=side_by_side([], theirs),
            )
        tests = side_by_side(result.tests, theirs)
        return ComparisonView(
            kind=self.kind, ours=result.score, gradescope=gs, agrees=result.agrees,
            explanation=_explain(result, gs, tests), tests=tests,
        )


def _explain(result: Result, gradescope: float | None, tests: list[TestRow]) -> str:
    if gradescope is None:
        return "Gradescope's score is not in the payload: nothing to compare"
    if result.score is None:
        return f"no score from our run ({result.outcome}): {result.message or 'no message'}"
    if result.agrees:
        return f"both scored {result.score:g}"
    differing = [t.name for t in tests if t.same is False]
    which = f"; tests that differ: {', '.join(differing[:10])}" if differing else ""
    return f"we scored {result.score:g}, Gradescope {gradescope:g} (outcome {result.outcome}){which}"
