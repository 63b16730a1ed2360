"""Evidence that a test is nondeterministic, never a guess.

A test is nondeterministic for an assignment version when its outcome differs across runs
of the same files: our re-runs of the payload (when a disagreement with Gradescope is
first seen, at most ``GREENGRADER_AGREEMENT_REGRADES`` of them), or the results of
identical submissions (ours, or Gradescope's). What the re-runs show is kept per test in
``test_evidence``: a test found stable is not re-run for every later submission, and a
test found nondeterministic reports its differences as such.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from greengrader.agreement.compare import TOTAL, Comparison, Side, compare, test_key
from greengrader.db import Database
from greengrader.errors import GreengraderError
from greengrader.grading.results import AGREEMENT_TOLERANCE
from greengrader.models import Result, Submission, TestEvidence

log = logging.getLogger(__name__)
IDENTICAL_LOOKBACK = 20  # earlier results of the same files consulted


@dataclass
class Judged:
    comparison: Comparison
    regrades: int = 0

    def as_json(self) -> dict[str, object]:
        return self.comparison.as_json(self.regrades)


def files_digest(files: Mapping[str, bytes]) -> str:
    """sha256 of the student's files (paths and contents; metadata excluded)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in files if p.startswith("submission/")):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()


def varying(runs: Sequence[Side], what: str) -> dict[str, str]:
    """Tests whose status or score is not the same in every run that has them."""
    seen: dict[str, set[tuple[object, float | None]]] = {}
    for run in runs:
        for i, test in enumerate(run.tests):
            score = test.get("score")
            rounded = None if score is None else round(float(score) / AGREEMENT_TOLERANCE) * AGREEMENT_TOLERANCE
            seen.setdefault(test_key(test, i), set()).add((test.get("status"), rounded))
    return {
        key: f"{what}: " + ", ".join(sorted(f"{s}/{v:g}" if v is not None else str(s) for s, v in outcomes))
        for key, outcomes in seen.items() if len(outcomes) > 1
    }


def judge(
    db: Database,
    *,
    assignment_id: int,
    submission_id: int,
    digest: str,
    ours: Side | None,
    gradescope: Side | None,
    rerun: Callable[[], Side | None],
    regrades: int,
) -> Judged:
    """Compare ``ours`` with Gradescope's, re-running (``rerun``) when a difference in a
    test without evidence is seen, and store what was learnt about each test."""
    if gradescope is None:
        return Judged(Comparison(None))
    with db.session() as session:
        known = {e.test_key: e.nondeterministic for e in session.scalars(
            select(TestEvidence).where(TestEvidence.assignment_id == assignment_id))}
        earlier = session.execute(
            select(Result.tests, Submission.gradescope_results)
            .join(Submission, Result.submission_id == Submission.id)
            .where(Submission.assignment_id == assignment_id, Result.files_digest == digest,
                   Result.submission_id != submission_id)
            .order_by(Result.id.desc()).limit(IDENTICAL_LOOKBACK)
        ).all()
    found = varying([Side(None, r.tests or ()) for r in earlier] + [ours or Side(None)],
                    "our outcome varied across identical submissions")
    theirs = [s for s in (Side.from_results(r.gradescope_results) for r in earlier) if s is not None]
    found |= varying([*theirs, gradescope], "Gradescope's outcome varied across identical submissions")
    nondeterministic = {k for k, v in known.items() if v} | found.keys()
    comparison = compare(ours, gradescope, nondeterministic)
    unexplained = [k for k in comparison.differing if k != TOTAL and k not in known and k not in found]
    stable: dict[str, str] = {}
    runs = 0
    if unexplained and ours is not None and ours.tests:
        reruns: list[Side] = []
        for _ in range(regrades):
            try:
                side = rerun()
            except GreengraderError as exc:  # the grade stands; the evidence waits for the next one
                log.warning("re-run for agreement evidence failed: %s", exc)
                break
            runs += 1
            if side is not None and side.tests:
                reruns.append(side)
        if reruns:
            found |= varying([ours, *reruns], f"our outcome varied across {len(reruns) + 1} runs of the same files")
            stable = {k: f"the same in {len(reruns) + 1} runs of the same files"
                      for k in unexplained if k not in found}
        comparison = compare(ours, gradescope, nondeterministic | found.keys())
    _record(db, assignment_id, submission_id, known, found, stable)
    return Judged(comparison, runs)


def _record(db: Database, assignment_id: int, submission_id: int, known: Mapping[str, bool],
            found: Mapping[str, str], stable: Mapping[str, str]) -> None:
    new = {k: (True, v) for k, v in found.items() if not known.get(k)}
    new |= {k: (False, v) for k, v in stable.items() if k not in known}
    if not new:
        return
    try:
        _store(db, assignment_id, submission_id, new)
    except IntegrityError:  # another worker recorded the same test meanwhile: its evidence stands
        log.info("evidence for assignment %s recorded concurrently", assignment_id)
    if any(flag for flag, _ in new.values()):
        reclassify(db, assignment_id, {k for k, (flag, _) in new.items() if flag})


def reclassify(db: Database, assignment_id: int, nondeterministic: set[str]) -> int:
    """Earlier results of the assignment version that differed only in tests now known to
    be nondeterministic become *nondeterministic*; returns how many changed."""
    changed = 0
    with db.transaction() as session:
        rows = session.scalars(
            select(Result).join(Submission, Result.submission_id == Submission.id)
            .where(Submission.assignment_id == assignment_id, Result.agreement == "differs").with_for_update(of=Result)
        ).all()
        for result in rows:
            tests = [dict(t, verdict="nondeterministic") if t.get("verdict") == "differs" and t.get("key")
                     in nondeterministic else t for t in (result.comparison or {}).get("tests", [])]
            if any(t.get("verdict") == "differs" for t in tests) or tests == (result.comparison or {}).get("tests"):
                continue
            result.comparison = {**(result.comparison or {}), "tests": tests}
            result.agreement, result.agrees = "nondeterministic", True
            changed += 1
    return changed


def _store(db: Database, assignment_id: int, submission_id: int, new: Mapping[str, tuple[bool, str]]) -> None:
    with db.transaction() as session:
        rows = {e.test_key: e for e in session.scalars(
            select(TestEvidence).where(TestEvidence.assignment_id == assignment_id,
                                       TestEvidence.test_key.in_(list(new))).with_for_update())}
        for key, (flag, evidence) in new.items():
            row = rows.get(key)
            if row is None:
                session.add(TestEvidence(assignment_id=assignment_id, test_key=key[:500], nondeterministic=flag,
                                         evidence=evidence, submission_id=submission_id))
            elif flag and not row.nondeterministic:  # a stable test later seen to vary
                row.nondeterministic, row.evidence, row.submission_id = True, evidence, submission_id
