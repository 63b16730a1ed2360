"""Regressions found by fuzzing the payload parser (see docs/fuzzing.md, "What was found").

Each input here used to crash the parser, be misreported, or pass validation with a value
that Postgres (jsonb/text) or the pseudonymiser then failed on, which made it a poison
message for the bridge's whole batch.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from greengrader.bridge.ingest import prepare
from greengrader.bridge.records import Accepted, Rejected
from greengrader.errors import PayloadRejected
from greengrader.payload.limits import MAX_JSON_DEPTH
from greengrader.payload.parse import parse_payload
from greengrader.payload.storable import unstorable_json
from greengrader.settings import load_settings
from tests import payloads


def _meta(**assignment: Any) -> dict[str, Any]:
    meta = payloads.metadata()
    meta["assignment"].update(assignment)
    return meta


def _raw_meta(extra: str) -> bytes:
    return payloads.build(('{"id": 700001, "assignment": {"id": 1, "course_id": 2}, "x": ' + extra + "}").encode())


def _nul_named_entry() -> bytes:
    return payloads.with_entry(payloads.build(), "gradescope_data/a\x01b", b"x").replace(
        b"gradescope_data/a\x01b", b"gradescope_data/a\x00b"
    )


REJECTED = {
    # was: OverflowError escaped parse_payload
    "total_points_beyond_float": (payloads.build(json.dumps(_meta(total_points=10**400)).encode()), "wrong_type"),
    "total_points_nan": (payloads.build(_meta(total_points="nan")), "wrong_type"),
    # were: misreported as corrupt_zip (int() refuses what str.isdigit() admits)
    "superscript_id": (payloads.build({**payloads.metadata(), "id": "²"}), "wrong_type"),
    "id_of_5000_digits": (payloads.build({**payloads.metadata(), "id": "9" * 5000}), "wrong_type"),
    "json_int_of_5000_digits": (_raw_meta("9" * 5000), "invalid_metadata"),
    # were: accepted, then refused by Postgres (text/jsonb) on insert
    "nul_in_title": (payloads.build(_meta(title="a\u0000b")), "invalid_metadata"),
    "nul_in_a_key": (_raw_meta('{"\\u0000": 1}'), "invalid_metadata"),
    "nan_in_metadata": (_raw_meta("NaN"), "invalid_metadata"),
    "overflowing_float_in_metadata": (_raw_meta("1e400"), "invalid_metadata"),
    # was: accepted, then UnicodeEncodeError in pseudonymisation
    "lone_surrogate": (_raw_meta('"\\ud800"'), "invalid_metadata"),
    # was: accepted, then RecursionError in pseudonymisation (copy.deepcopy)
    "nesting_900_deep": (_raw_meta("[" * 900 + "]" * 900), "invalid_metadata"),
    # was: accepted (zipfile cuts names at NUL, so the parser's NUL check never saw one)
    "nul_in_entry_name": (_nul_named_entry(), "unsafe_path"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_fuzzing_finding_is_rejected_with_its_reason(case: str) -> None:
    data, reason = REJECTED[case]
    with pytest.raises(PayloadRejected) as info:
        parse_payload(data)
    assert info.value.reason == reason
    item = prepare(load_settings(pseudonymise=True), data)
    assert isinstance(item, Rejected) and item.reason == reason


def test_non_finite_results_are_recorded_not_stored() -> None:
    parsed = parse_payload(payloads.build(results=b'{"score": Infinity}'))
    assert parsed.results is None and parsed.score is None and parsed.results_error


def test_test_scores_that_sum_to_infinity_give_no_score() -> None:
    parsed = parse_payload(payloads.build(results={"tests": [{"score": 1e308}, {"score": 1e308}]}))
    assert parsed.results is not None and parsed.score is None


def test_nul_is_dropped_from_the_hostname() -> None:
    data = payloads.build(extra={"gradescope_data/hostname.txt": b"host\x00name\n"})
    assert parse_payload(data).hostname == "hostname"


def test_metadata_at_the_depth_limit_is_accepted_and_pseudonymised() -> None:
    value: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH - 1):  # the metadata object itself is level 1
        value = [value]
    data = payloads.build({**payloads.metadata(), "x": value})
    assert unstorable_json(parse_payload(data).metadata) is None
    assert isinstance(prepare(load_settings(pseudonymise=True), data), Accepted)
    with pytest.raises(PayloadRejected):
        parse_payload(payloads.build({**payloads.metadata(), "x": [value]}))
