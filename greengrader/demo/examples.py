"""Payloads for the example assignments shipped under ``examples/``.

Each example is ``examples/<name>/`` with ``source/`` (a Gradescope autograder:
``setup.sh``, ``run_autograder``...), ``submissions/<case>/`` and ``expected.json``
(assignment id, title, total points and the score Gradescope gives each case). The
payloads are zips in the shape the ``run_autograder`` hook publishes (nested layout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from greengrader.payload.build import nested_payload

# The repository's examples/ folder, beside the package.
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def example_names(root: Path = EXAMPLES_DIR) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / "source").is_dir() and (p / "expected.json").is_file())


def example_cases(name: str, root: Path = EXAMPLES_DIR) -> list[str]:
    return sorted(p.name for p in (root / name / "submissions").iterdir() if p.is_dir())


def example_payload(name: str, case: str, submission_id: int, *, root: Path = EXAMPLES_DIR, course_id: int = 4343) -> bytes:
    """A hook payload for submission ``case`` of example ``name``."""
    base = root / name
    expected: dict[str, Any] = json.loads((base / "expected.json").read_text())
    score = expected["gradescope_scores"].get(case)
    metadata = {
        "id": submission_id,
        "created_at": "2026-11-21T11:01:00.000000-08:00",
        "assignment": {
            "id": expected["assignment_id"], "course_id": course_id, "title": expected["title"],
            "total_points": str(expected["total_points"]), "due_date": None, "late_due_date": None,
            "release_date": None, "group_submission": False, "group_size": None,
        },
        "submission_method": "upload",
        "users": [{"email": f"student{submission_id}@example.edu", "id": submission_id, "name": "Example Student",
                   "sid": f"A{submission_id:08d}"}],
        "previous_submissions": [],
    }
    results = {"score": score, "tests": []} if score is not None else {"tests": []}
    return build_payload(base / "source", base / "submissions" / case, metadata, results)


def build_payload(source: Path, submission: Path, metadata: dict[str, Any], results: dict[str, Any]) -> bytes:
    """The hook's payload for the autograder in ``source`` and the submission in ``submission``."""
    return nested_payload(
        hostname="10.0.3.17 \n", metadata=metadata, results=results,
        source=_files(source), submission=_files(submission),
        autograder={name: (source / name).read_bytes() for name in ("run_autograder", "setup.sh")
                    if (source / name).is_file()},
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
