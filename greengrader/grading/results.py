"""Gradescope ``results.json``: parse, normalise and compare with Gradescope's own score.

The spec (Gradescope autograder docs): a top-level ``score`` is optional when the tests
carry scores, in which case the score is their sum; each test has ``score``,
``max_score``, ``status``, ``name``, ``number``, ``output``, ``visibility``, ``tags``...;
plus ``output``, ``execution_time``, ``leaderboard`` (``name``, ``value``, ``order``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from greengrader.errors import InvalidResults

AGREEMENT_TOLERANCE = 0.01
MAX_TEST_OUTPUT = 20_000  # characters per test kept in the Result row
_TEST_KEYS = ("name", "number", "status", "output", "output_format", "visibility", "tags", "name_format")


@dataclass(frozen=True)
class ParsedResults:
    score: float
    max_score: float | None
    tests: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    execution_time: float | None = None
    leaderboard: list[dict[str, Any]] = field(default_factory=list)


def _number(value: Any, what: str) -> float:
    # Gradescope accepts numbers and numeric strings ("10.0" in metadata, sometimes in tests).
    if isinstance(value, bool):
        raise InvalidResults(f"{what} is a boolean, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidResults(f"{what} is not a number: {value!r}"[:200]) from None
    if not math.isfinite(number):
        raise InvalidResults(f"{what} is not finite")
    return number


def _test(raw: Any, index: int) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidResults(f"tests[{index}] is not an object")
    test: dict[str, Any] = {k: raw[k] for k in _TEST_KEYS if k in raw}
    if isinstance(test.get("output"), str) and len(test["output"]) > MAX_TEST_OUTPUT:
        test["output"] = test["output"][:MAX_TEST_OUTPUT] + "\n[output truncated]"
    test["score"] = _number(raw["score"], f"tests[{index}].score") if raw.get("score") is not None else None
    test["max_score"] = (
        _number(raw["max_score"], f"tests[{index}].max_score") if raw.get("max_score") is not None else None
    )
    if "status" not in test and test["score"] is not None and test["max_score"] is not None:
        test["status"] = "passed" if test["score"] >= test["max_score"] else "failed"
    return test


def parse_results(data: Mapping[str, Any], total_points: float | None = None) -> ParsedResults:
    """Normalise a results.json object; :class:`InvalidResults` if no score can be derived."""
    raw_tests = data.get("tests", [])
    if raw_tests is None:
        raw_tests = []
    if not isinstance(raw_tests, list):
        raise InvalidResults("tests is not a list")
    tests = [_test(raw, i) for i, raw in enumerate(raw_tests)]
    if data.get("score") is not None:
        score = _number(data["score"], "score")
    elif any(t["score"] is not None for t in tests):
        score = sum(t["score"] or 0.0 for t in tests)
    else:
        raise InvalidResults("results.json has neither a score nor scored tests")
    maxima = [t["max_score"] for t in tests if t["max_score"] is not None]
    max_score = sum(maxima) if maxima else total_points
    leaderboard = data.get("leaderboard") or []
    if not isinstance(leaderboard, list):
        raise InvalidResults("leaderboard is not a list")
    output = data.get("output", "")
    execution_time = data.get("execution_time")
    return ParsedResults(
        score=score,
        max_score=max_score,
        tests=tests,
        output=output if isinstance(output, str) else str(output),
        execution_time=_number(execution_time, "execution_time") if execution_time is not None else None,
        leaderboard=[dict(e) for e in leaderboard if isinstance(e, Mapping)],
    )


def gradescope_score(data: Mapping[str, Any] | None) -> float | None:
    """Gradescope's score from the results.json carried in a payload (None if unusable)."""
    if not data:
        return None
    try:
        return parse_results(data).score
    except InvalidResults:
        return None


def agrees(ours: float | None, gradescope: float | None, tolerance: float = AGREEMENT_TOLERANCE) -> bool | None:
    """True when both scores exist and differ by at most ``tolerance``; None if unknown."""
    if ours is None or gradescope is None:
        return None
    return abs(ours - gradescope) <= tolerance + 1e-9
