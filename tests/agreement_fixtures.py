"""A Gradescope-style autograder for agreement tests, built in memory.

Like Gradescope's public python sample it has a test that awards a random score on every
run; another passes only when the package ``setup.sh`` installs (``ggfixture``, shipped in
the autograder's ``vendor/``) is importable. ``with_package=False`` ships the autograder
without it, as a ``setup.sh`` whose install fails silently (``|| true``) would.
"""

from __future__ import annotations

from typing import Any

from tests.payloads import build, metadata

RANDOM_TEST = "1.3 random (like set_score(random.randint(0, 100) / 10))"
PACKAGE_TEST = "1.2 uses the installed package"
ADD_TEST = "1.1 add"

RUN_TESTS = b'''
import json, random, sys
sys.path.insert(0, "/autograder/submission")
tests = []
try:
    from solution import add
    ok = add(1, 2) == 3
except Exception as exc:
    ok = False
tests.append({"name": "1.1 add", "number": "1.1", "score": 1.0 if ok else 0.0, "max_score": 1.0})
try:
    import ggfixture
    ok, out = ggfixture.answer() == 42, ""
except ImportError as exc:
    ok, out = False, str(exc)
tests.append({"name": "1.2 uses the installed package", "number": "1.2", "score": 1.0 if ok else 0.0,
              "max_score": 1.0, "output": out})
tests.append({"name": "1.3 random (like set_score(random.randint(0, 100) / 10))", "number": "1.3",
              "score": round(random.uniform(5, 10), 4), "max_score": 10.0})
json.dump({"tests": tests, "leaderboard": [{"name": "tests", "value": len(tests)}]},
          open("/autograder/results/results.json", "w"))
'''

SETUP = b'''#!/bin/sh
# Installs the autograder's own package; "|| true" hides a failed install, as real ones often do.
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
mkdir -p "$site"
cp -r /autograder/source/vendor/ggfixture "$site/" || true
'''


def source(with_package: bool = True) -> dict[str, bytes]:
    files = {
        "setup.sh": SETUP,
        "run_autograder": b"#!/bin/sh\ncd /autograder/source && python3 run_tests.py\n",
        "run_tests.py": RUN_TESTS,
    }
    if with_package:
        files["vendor/ggfixture/__init__.py"] = b"def answer():\n    return 42\n"
    return files


def gradescope_results(random_score: float) -> dict[str, Any]:
    """What Gradescope reported: every deterministic test passed; the random one scored
    ``random_score``. Tests pass values below 5: our run draws from 5 to 10, so it never
    matches Gradescope's by chance (within the 0.01 tolerance that would be "same")."""
    return {"tests": [
        {"name": ADD_TEST, "number": "1.1", "score": 1.0, "max_score": 1.0},
        {"name": PACKAGE_TEST, "number": "1.2", "score": 1.0, "max_score": 1.0},
        {"name": RANDOM_TEST, "number": "1.3", "score": random_score, "max_score": 10.0},
    ], "leaderboard": [{"name": "tests", "value": 3}]}


def payload(submission_id: int, random_score: float, *, with_package: bool = True, assignment_id: int = 5150) -> bytes:
    return build(
        metadata(submission_id=submission_id, assignment_id=assignment_id),
        source=source(with_package),
        submission={"solution.py": b"def add(a, b):\n    return a + b\n"},
        results=gradescope_results(random_score),
    )
