"""What is read from Gradescope's own JSON: the submission metadata's ids, title and users
(validated, as the store keys rows on them) and the score in ``results.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from greengrader.errors import PayloadRejected


@dataclass(frozen=True)
class SubmissionFields:
    """The fields of ``submission_metadata.json`` the store needs."""

    gradescope_id: int
    assignment_id: int
    course_id: int
    assignment_title: str
    total_points: float | None
    created_at: str | None
    users: list[dict[str, Any]]


def submission_fields(meta: dict[str, Any]) -> SubmissionFields:
    """Validate the metadata's ids, users and assignment; raise :class:`PayloadRejected`."""
    assignment = meta.get("assignment")
    if assignment is None:
        raise PayloadRejected("missing_id", "assignment is missing")
    if not isinstance(assignment, dict):
        raise PayloadRejected("wrong_type", "assignment is not an object")
    users = meta.get("users", [])
    if not isinstance(users, list) or not all(isinstance(u, dict) for u in users):
        raise PayloadRejected("wrong_type", "users is not a list of objects")
    for user in users:
        if user.get("id") is not None:
            _int_id(user["id"], "users[].id")
        for key in ("name", "email", "sid"):
            _optional_str(user.get(key), f"users[].{key}")
    return SubmissionFields(
        gradescope_id=_int_id(meta.get("id"), "id"),
        assignment_id=_int_id(assignment.get("id"), "assignment.id"),
        course_id=_int_id(assignment.get("course_id"), "assignment.course_id"),
        assignment_title=(_optional_str(assignment.get("title"), "assignment.title") or "")[:500],
        total_points=_optional_float(assignment.get("total_points"), "assignment.total_points"),
        created_at=_optional_str(meta.get("created_at"), "created_at"),
        users=users,
    )


def _int_id(value: Any, name: str) -> int:
    if value is None:
        raise PayloadRejected("missing_id", f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PayloadRejected("wrong_type", f"{name} is {type(value).__name__}, not an integer")
    if isinstance(value, str):
        # isdigit() alone admits "²", which int() refuses; 19 digits already exceed 2**63.
        value = value.strip()
        if not (value.isascii() and value.isdigit()):
            raise PayloadRejected("wrong_type", f"{name} is not an integer")
        if len(value.lstrip("0")) > 19:
            raise PayloadRejected("wrong_type", f"{name} is out of range")
    number = int(value)
    if not 0 < number < 2**63:
        raise PayloadRejected("wrong_type", f"{name} is out of range")
    return number


def _optional_float(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadRejected("wrong_type", f"{name} is {type(value).__name__}, not a number")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise PayloadRejected("wrong_type", f"{name} is not a number") from None
    if not math.isfinite(number):
        raise PayloadRejected("wrong_type", f"{name} is not a finite number")
    return number


def _optional_str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadRejected("wrong_type", f"{name} is {type(value).__name__}, not a string")
    return value


def score_of(results: dict[str, Any] | None) -> float | None:
    """Gradescope's score: ``score`` if present, else the sum of the tests' scores."""
    if results is None:
        return None
    score = results.get("score")
    if isinstance(score, int | float) and not isinstance(score, bool):
        return float(score)
    tests = results.get("tests")
    if isinstance(tests, list):
        scores = [t.get("score") for t in tests if isinstance(t, dict)]
        numbers = [float(s) for s in scores if isinstance(s, int | float) and not isinstance(s, bool)]
        if numbers and math.isfinite(total := sum(numbers)):  # 1e308 + 1e308 is inf
            return total
    return None
