"""Gradescope's results.json against ours, test by test.

Tests are paired by name (duplicate names in order of appearance), then by number, and
what is left over exists on one side only (when Gradescope reports only a total, the
totals are compared). Each pair gets a verdict: ``same`` (status and
score within the tolerance), ``differs``, or ``nondeterministic`` when it differs but the
test is known to vary between runs of the same submission (evidence.py). A submission
then *agrees*, *differs* (some test, or the total when no test explains it), or is
*nondeterministic* (only known-nondeterministic tests differ). The leaderboard is
compared separately and never changes the classification.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from greengrader.errors import InvalidResults
from greengrader.grading.results import AGREEMENT_TOLERANCE, agrees, parse_results

Agreement = Literal["agrees", "differs", "nondeterministic"]
AGREEMENTS: tuple[Agreement, ...] = ("agrees", "differs", "nondeterministic")
TOTAL = "(total score)"


@dataclass(frozen=True)
class Side:
    """One side's outcome: total score, tests and leaderboard as :func:`parse_results` gives them."""

    score: float | None
    tests: Sequence[Mapping[str, Any]] = ()
    leaderboard: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def from_results(cls, data: Mapping[str, Any] | None) -> Side | None:
        """Gradescope's results.json from a payload; None when absent or unusable."""
        if not data:
            return None
        try:
            parsed = parse_results(data)
        except InvalidResults:
            return None
        return cls(parsed.score, parsed.tests, parsed.leaderboard)


@dataclass
class Comparison:
    agreement: Agreement | None  # None: Gradescope's results are unknown
    tests: list[dict[str, Any]] = field(default_factory=list)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    leaderboard_agrees: bool | None = None
    score_agrees: bool | None = None

    @property
    def differing(self) -> list[str]:
        """Keys of the tests that really differ (the total included)."""
        return [t["key"] for t in self.tests if t["verdict"] == "differs"]

    def as_json(self, regrades: int = 0) -> dict[str, Any]:
        return {"tests": self.tests, "leaderboard": self.leaderboard,
                "leaderboard_agrees": self.leaderboard_agrees, "regrades": regrades}


def test_key(test: Mapping[str, Any], index: int) -> str:
    """The identity of a test within an assignment version: its name, else its number."""
    name = test.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    number = test.get("number")
    if number not in (None, ""):
        return f"#{number}"
    return f"[{index}]"


def pair_tests(
    ours: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """(key, our test, Gradescope's test) in Gradescope's order, then ours left over."""
    free = list(range(len(ours)))
    match: dict[int, int] = {}  # Gradescope's index -> ours

    def take(i: int, field_name: str) -> None:
        want = theirs[i].get(field_name)
        if i in match or want in (None, ""):
            return
        for j in free:
            if str(ours[j].get(field_name)) == str(want):
                match[i] = j
                free.remove(j)
                return

    for field_name in ("name", "number"):  # by name first; what is left, by number
        for i in range(len(theirs)):
            take(i, field_name)
    pairs: list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]] = [
        (test_key(t, i), ours[match[i]] if i in match else None, t) for i, t in enumerate(theirs)
    ]
    pairs.extend((test_key(ours[j], j), ours[j], None) for j in free)
    return pairs


def _same_score(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tolerance + 1e-9


def _same_status(a: Any, b: Any) -> bool:
    # A side without a status (no max_score to derive it from) is judged by its score.
    return a is None or b is None or a == b


def _outcome(test: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if test is None:
        return None
    return {"status": test.get("status"), "score": test.get("score"), "max_score": test.get("max_score")}


def compare(
    ours: Side | None,
    gradescope: Side | None,
    nondeterministic: Collection[str] = (),
    tolerance: float = AGREEMENT_TOLERANCE,
) -> Comparison:
    """Classify our outcome (None: no usable results) against Gradescope's."""
    if gradescope is None:
        return Comparison(None)
    ours = ours or Side(None)
    rows: list[dict[str, Any]] = []
    # Gradescope's results with a total only (no tests): the totals decide.
    pairs = pair_tests(ours.tests, gradescope.tests) if gradescope.tests else []
    for key, mine, theirs in pairs:
        same = (
            mine is not None and theirs is not None
            and _same_status(mine.get("status"), theirs.get("status"))
            and _same_score(mine.get("score"), theirs.get("score"), tolerance)
        )
        verdict = "same" if same else ("nondeterministic" if key in nondeterministic else "differs")
        rows.append({"key": key, "name": (theirs or mine or {}).get("name"),
                     "number": (theirs or mine or {}).get("number"), "verdict": verdict,
                     "ours": _outcome(mine), "gradescope": _outcome(theirs)})
    score_agrees = agrees(ours.score, gradescope.score, tolerance) is True
    verdicts = {r["verdict"] for r in rows}
    if verdicts <= {"same"} and not score_agrees:
        # Every test matches (or there are none) but the totals do not: an explicit
        # top-level score, or a run of ours that produced no results at all.
        rows.append({"key": TOTAL, "name": TOTAL, "number": None, "verdict": "differs",
                     "ours": {"status": None, "score": ours.score, "max_score": None},
                     "gradescope": {"status": None, "score": gradescope.score, "max_score": None}})
        verdicts.add("differs")
    agreement: Agreement = (
        "differs" if "differs" in verdicts else "nondeterministic" if "nondeterministic" in verdicts else "agrees"
    )
    board, board_agrees = compare_leaderboards(ours.leaderboard, gradescope.leaderboard)
    return Comparison(agreement, rows, board, board_agrees, score_agrees)


def compare_leaderboards(
    ours: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], bool | None]:
    """Leaderboard entries paired by name; None when neither side has a leaderboard."""
    if not ours and not theirs:
        return [], None
    mine = {str(e.get("name")): e.get("value") for e in ours}
    gs = {str(e.get("name")): e.get("value") for e in theirs}
    rows = [{"name": n, "ours": mine.get(n), "gradescope": gs.get(n), "same": _same_value(mine.get(n), gs.get(n))}
            for n in sorted(mine.keys() | gs.keys())]
    return rows, all(r["same"] for r in rows)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(float(a) - float(b)) <= AGREEMENT_TOLERANCE + 1e-9
    return bool(a == b)
