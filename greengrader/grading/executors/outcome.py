"""The outcome of a run and its TA-readable message, the same for every backend.

A backend reduces what it observed (container state, pod status, the wrapper's report) to a
:class:`RunEnd`; :func:`classify` turns that into an outcome. Ways a run can end that only
one backend knows of (Docker's disk budget, a Kubernetes eviction) are decided by the
backend before it gets here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from greengrader.grading.executors.base import Limits, Outcome

Verdict = tuple[Outcome, str, dict[str, Any] | None]
MISSING = "missing"  # the problem of a run that left no results.json


@dataclass(frozen=True)
class RunEnd:
    """How the autograder ended: ``raw_results`` is results.json's bytes, or None with
    ``problem`` saying why (:data:`MISSING`, "too large (...)", "not a regular file"...)."""

    timed_out: bool
    oom_killed: bool
    exit_code: int | None
    raw_results: bytes | None
    problem: str | None


def timeout_verdict(limits: Limits) -> Verdict:
    return "timeout", f"The autograder did not finish within {limits.timeout_s:g} s and was stopped.", None


def classify(limits: Limits, end: RunEnd) -> Verdict:
    """Outcome, message and parsed results: a timeout wins, then results.json decides; an
    OOM kill or a non-zero exit next to valid results is a note on a graded run."""
    if end.timed_out:
        return timeout_verdict(limits)
    results, why = decode_results(end.raw_results, end.problem)
    if results is None:
        if end.oom_killed:
            return "oom", f"The autograder ran out of memory (limit {limits.memory_mb} MB) and was killed.", None
        return "failed", f"{why} (autograder exit code {end.exit_code}).", None
    notes = []
    if end.oom_killed:
        notes.append(f"a process ran out of memory (limit {limits.memory_mb} MB) and was killed")
    if end.exit_code:
        notes.append(f"run_autograder exited with code {end.exit_code}")
    return "graded", "Graded." + (" Note: " + "; ".join(notes) + "." if notes else ""), results


def decode_results(raw: bytes | None, problem: str | None) -> tuple[dict[str, Any] | None, str]:
    """results.json as a dict, or None and why not."""
    if raw is None:
        if problem == MISSING:
            return None, "The autograder did not write /autograder/results/results.json"
        return None, f"/autograder/results/results.json is {problem}"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, (
            "results.json is not valid JSON — often the autograder printed into it "
            f"({str(exc)[:120]}; starts with {raw[:60]!r})"
        )
    if not isinstance(data, dict):
        return None, "results.json is not a JSON object"
    return data, ""
