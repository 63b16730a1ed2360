"""The shipped example assignments are found and give payloads the bridge accepts."""

from __future__ import annotations

import json

from greengrader.demo.examples import EXAMPLES_DIR, example_cases, example_names, example_payload
from greengrader.payload.parse import parse_payload


def test_every_example_case_is_a_valid_nested_payload() -> None:
    names = example_names()
    assert names, f"no examples under {EXAMPLES_DIR}"
    submission_id = 990001
    for name in names:
        expected = json.loads((EXAMPLES_DIR / name / "expected.json").read_text())
        for case in example_cases(name):
            parsed = parse_payload(example_payload(name, case, submission_id))
            assert (parsed.gradescope_id, parsed.layout) == (submission_id, "nested")
            assert parsed.assignment_id == expected["assignment_id"]
            assert parsed.score == expected["gradescope_scores"].get(case)
            assert "run_autograder" in parsed.source_files
            submission_id += 1
