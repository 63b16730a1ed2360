"""The payload parser on the shared fixtures (both layouts) and on every hostile case."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from greengrader.errors import PayloadRejected
from greengrader.payload.archive import unsafe_name
from greengrader.payload.digest import tree_hash
from greengrader.payload.limits import Limits
from greengrader.payload.parse import parse_payload
from greengrader.payload.reasons import REASONS
from tests import payloads

EXPECTED = {  # from the fixtures' README
    "correct.zip": (900101, 10.0, "nested"),
    "partial.zip": (900102, 6.0, "nested"),
    "syntax_error.zip": (900103, 0.0, "nested"),
    "infinite_loop.zip": (900104, 0.0, "nested"),
    "correct_flat_layout.zip": (900105, 10.0, "flat"),
    "correct_full_metadata.zip": (900106, 10.0, "nested"),
}


@pytest.fixture(scope="module")
def fixture_payloads(fixtures_dir: Path) -> dict[str, bytes]:
    folder = fixtures_dir / "hello-python" / "payloads"
    return {name: (folder / name).read_bytes() for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_payloads_parse(fixture_payloads: dict[str, bytes], name: str) -> None:
    parsed = parse_payload(fixture_payloads[name])
    gradescope_id, score, layout = EXPECTED[name]
    assert (parsed.gradescope_id, parsed.score, parsed.layout) == (gradescope_id, score, layout)
    assert (parsed.assignment_id, parsed.course_id, parsed.total_points) == (31337, 4242, 10.0)
    assert parsed.assignment_title == "Hello Python"
    assert parsed.hostname == "10.0.3.17"
    assert parsed.submission_files == ("solution.py",)
    assert set(parsed.source_files) == {"run_autograder", "setup.sh", "tests/run_tests.py"}
    assert parsed.users[0]["id"] == 1000 + gradescope_id % 1000
    assert parsed.results is not None and parsed.results_error is None


def test_source_hash_is_the_same_for_both_layouts_and_matches_the_folder(
    fixture_payloads: dict[str, bytes], fixtures_dir: Path
) -> None:
    nested = parse_payload(fixture_payloads["correct.zip"])
    flat = parse_payload(fixture_payloads["correct_flat_layout.zip"])
    assert nested.source_hash == flat.source_hash
    source = fixtures_dir / "hello-python" / "source"
    files = {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    assert tree_hash(sorted(files.items())) == nested.source_hash


def test_source_hash_changes_with_the_source() -> None:
    one = parse_payload(payloads.build())
    two = parse_payload(payloads.build(source={**payloads.SOURCE, "setup.sh": b"echo changed\n"}))
    assert one.source_hash != two.source_hash


@pytest.mark.parametrize("reason", sorted(payloads.hostile_cases()))
def test_hostile_payload_is_rejected_with_its_reason(reason: str) -> None:
    data = payloads.hostile_cases()[reason]
    with pytest.raises(PayloadRejected) as info:
        parse_payload(data)
    assert info.value.reason == reason
    assert reason in REASONS


def test_overlapping_bomb_is_not_detected_by_zipfile_itself() -> None:
    # The reason the overlap check exists: Python 3.11 opens and lists this without complaint.
    with zipfile.ZipFile(io.BytesIO(payloads.overlapping_bomb())) as zf:
        assert len(zf.infolist()) > 3


def test_over_size_cap() -> None:
    data = payloads.build()
    with pytest.raises(PayloadRejected) as info:
        parse_payload(data, Limits(max_payload_bytes=len(data) - 1))
    assert info.value.reason == "too_large"


def test_too_many_entries() -> None:
    with pytest.raises(PayloadRejected) as info:
        parse_payload(payloads.build(), Limits(max_zip_entries=3))
    assert info.value.reason == "too_many_entries"


def test_total_uncompressed_cap() -> None:
    data = payloads.build(submission={"big.bin": bytes(range(256)) * 8192})
    with pytest.raises(PayloadRejected) as info:
        parse_payload(data, Limits(max_uncompressed_bytes=1024 * 1024))
    assert info.value.reason == "zip_bomb"


def test_member_that_inflates_past_its_declared_size_is_rejected() -> None:
    meta = json.dumps(payloads.metadata()).encode() + b" " * (5 * 1024 * 1024)
    data = payloads.build(meta)
    lying = payloads.patch_central(data, "gradescope_data/autograder/submission_metadata.json", file_size=10)
    with pytest.raises(PayloadRejected) as info:
        parse_payload(lying)
    assert info.value.reason in {"zip_bomb", "corrupt_zip"}


def test_absolute_path_is_rejected() -> None:
    with pytest.raises(PayloadRejected) as info:
        parse_payload(payloads.with_entry(payloads.build(), "/etc/passwd", b"x"))
    assert info.value.reason == "unsafe_path"


@pytest.mark.parametrize(
    "name", ["/abs", "a/../b", "..", "C:/x", "a\\b", "x\x00y", ""],
)
def test_unsafe_names(name: str) -> None:
    assert unsafe_name(name)


@pytest.mark.parametrize("name", ["gradescope_data/a..b", "gradescope_data/.hidden", "a/b/c.py"])
def test_safe_names(name: str) -> None:
    assert not unsafe_name(name)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"assignment": "31337"}, "wrong_type"),
        ({"assignment": None}, "missing_id"),
        ({"users": {"name": "x"}}, "wrong_type"),
        ({"users": [{"id": "abc"}]}, "wrong_type"),
        ({"users": [{"id": 1, "email": 5}]}, "wrong_type"),
        ({"id": True}, "wrong_type"),
        ({"id": "12x"}, "wrong_type"),
        ({"id": -3}, "wrong_type"),
        ({"created_at": 12}, "wrong_type"),
    ],
)
def test_wrong_metadata_types(change: dict[str, object], reason: str) -> None:
    with pytest.raises(PayloadRejected) as info:
        parse_payload(payloads.build({**payloads.metadata(), **change}))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("course_id", None, "missing_id"), ("id", 3.5, "wrong_type"), ("total_points", {"a": 1}, "wrong_type")],
)
def test_wrong_assignment_fields(field: str, value: object, reason: str) -> None:
    meta = payloads.metadata()
    meta["assignment"][field] = value
    with pytest.raises(PayloadRejected) as info:
        parse_payload(payloads.build(meta))
    assert info.value.reason == reason


def test_metadata_that_is_not_an_object() -> None:
    with pytest.raises(PayloadRejected) as info:
        parse_payload(payloads.build(b"[1, 2, 3]"))
    assert info.value.reason == "invalid_metadata"


def test_numeric_string_ids_are_accepted() -> None:
    parsed = parse_payload(payloads.build({**payloads.metadata(), "id": "700123"}))
    assert parsed.gradescope_id == 700123


def test_broken_results_are_recorded_not_rejected() -> None:
    parsed = parse_payload(payloads.build(results=b"Running tests...\n{\"score\": 3"))
    assert parsed.results is None and parsed.score is None
    assert parsed.results_error and "JSON" in parsed.results_error


def test_missing_results_are_recorded() -> None:
    data = payloads.zip_files(
        {k: v for k, v in _members(payloads.build()).items() if not k.endswith("results.json")}
    )
    parsed = parse_payload(data)
    assert parsed.results is None and parsed.results_error == "results/results.json is missing"


def test_score_defaults_to_the_sum_of_test_scores() -> None:
    results = {"tests": [{"score": 2.0}, {"score": 1.5}, {"name": "unscored"}]}
    assert parse_payload(payloads.build(results=results)).score == 3.5


def test_stored_and_lzma_members_are_accepted() -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_LZMA):
        assert parse_payload(payloads.build(compression=method)).gradescope_id == 700001


def test_flat_layout_built_in_memory() -> None:
    parsed = parse_payload(payloads.build(layout="flat"))
    assert parsed.layout == "flat" and parsed.metadata_path == "gradescope_data/submission_metadata.json"


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}
