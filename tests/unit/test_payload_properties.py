"""Property tests: the payload parser on arbitrary and mutated input.

For every input, :func:`parse_payload` either returns a payload whose every field Postgres can
store, or raises :class:`PayloadRejected` with a reason from :data:`REASONS`; nothing else ever
escapes, and the traced memory peak of one call stays under :data:`MEMORY_BOUND`. ``prepare``
(the bridge's entry point, which also pseudonymises) never reports an ``internal_error``, and
the pseudonymised zip it stores parses back to the same submission.

The example cases live in ``test_payload.py``; these tests generate inputs. Raise the number
of examples for a longer run with ``GREENGRADER_HYPOTHESIS_EXAMPLES`` (the default keeps this
file under a minute on two cores).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tracemalloc
import zipfile
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from greengrader.bridge.ingest import prepare
from greengrader.bridge.records import Accepted, Rejected
from greengrader.errors import PayloadRejected
from greengrader.payload.limits import Limits
from greengrader.payload.parse import ParsedPayload, parse_payload
from greengrader.payload.reasons import REASONS
from greengrader.settings import load_settings
from tests import payloads

MiB = 1024 * 1024
LIMITS = Limits(max_payload_bytes=2 * MiB, max_uncompressed_bytes=2 * MiB, max_zip_entries=200)
SETTINGS = load_settings(
    max_payload_bytes=LIMITS.max_payload_bytes,
    max_uncompressed_bytes=LIMITS.max_uncompressed_bytes,
    max_compression_ratio=LIMITS.max_compression_ratio,
    max_zip_entries=LIMITS.max_zip_entries,
    pseudonymise=True,
)
# One call holds at most one decompressed member (a growing bytearray, then its bytes copy:
# about 2x the member cap), zlib's window and the ZipInfo objects; the generated inputs here
# carry small JSON, so the worst case is ~2x the uncompressed cap plus a constant.
# Twice that margin catches a parser that starts buffering the whole archive or leaks per
# entry. (The JSON-heavy worst case has its own test below.)
MEMORY_BOUND = 4 * LIMITS.max_uncompressed_bytes + 1 * MiB

EXAMPLES = int(os.environ.get("GREENGRADER_HYPOTHESIS_EXAMPLES", "100"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("GREENGRADER_HYPOTHESIS_RANDOM") is None,
)


# --- the oracle ----------------------------------------------------------------------------


def parse_or_reject(data: bytes, limits: Limits = LIMITS) -> ParsedPayload | None:
    """Parse under tracemalloc; a rejection must carry a known reason. Any other exception
    propagates and fails the test, which is the point."""
    tracemalloc.start()
    try:
        try:
            parsed: ParsedPayload | None = parse_payload(data, limits)
        except PayloadRejected as exc:
            assert exc.reason in REASONS, exc.reason
            parsed = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= MEMORY_BOUND, f"peak {peak} bytes > bound {MEMORY_BOUND}"
    if parsed is not None:
        assert_storable(parsed)
    return parsed


def check(data: bytes) -> ParsedPayload | None:
    parsed = parse_or_reject(data)
    item = prepare(SETTINGS, data)
    if isinstance(item, Rejected):
        assert item.reason in REASONS, f"prepare reported {item.reason}: {item.detail}"
        assert parsed is None
        return None
    assert isinstance(item, Accepted) and parsed is not None
    stored = parse_payload(item.data, LIMITS)
    assert (stored.gradescope_id, stored.source_hash, stored.layout) == (
        parsed.gradescope_id, parsed.source_hash, parsed.layout
    )
    assert_storable_json(item.metadata)
    assert_storable_json(item.users)
    return parsed


def assert_storable_json(value: Any) -> None:
    """What Postgres jsonb accepts: finite numbers, no NUL, valid UTF-8 (no lone surrogates)."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    assert "\\u0000" not in text
    text.encode("utf-8")


def assert_storable(parsed: ParsedPayload) -> None:
    assert 0 < parsed.gradescope_id < 2**63 and 0 < parsed.assignment_id < 2**63 and 0 < parsed.course_id < 2**63
    assert_storable_json(parsed.metadata)
    assert_storable_json(parsed.users)
    assert_storable_json(parsed.results)
    for text in (parsed.assignment_title, parsed.hostname, parsed.created_at):
        if text is not None:
            assert "\x00" not in text
            text.encode("utf-8")
    for number in (parsed.total_points, parsed.score):
        if number is not None:
            json.dumps(number, allow_nan=False)
    assert parsed.source_files
    assert (parsed.results is None) == (parsed.results_error is not None)


# --- strategies ----------------------------------------------------------------------------

safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
contents = st.binary(max_size=300) | st.sampled_from([b"", b"\0" * 5000, b"PK\x03\x04"])
compression = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])


@st.composite
def valid_payloads(draw: st.DrawFn) -> bytes:
    rel = st.text(st.sampled_from("abc./_-é"), min_size=1, max_size=12).filter(
        lambda n: not n.startswith("/") and ".." not in n.split("/") and not n.endswith("/")
    )
    return payloads.build(
        layout=draw(st.sampled_from(["nested", "flat"])),
        source=draw(st.dictionaries(rel, contents, min_size=1, max_size=3)),
        submission=draw(st.dictionaries(rel, contents, min_size=1, max_size=3)),
        compression=draw(compression),
    )


CD_FIELDS = {  # central directory record: offset -> struct format
    "version": (4, "<H"), "needed": (6, "<H"), "flags": (8, "<H"), "method": (10, "<H"),
    "crc": (16, "<L"), "csize": (20, "<L"), "usize": (24, "<L"), "namelen": (28, "<H"),
    "extralen": (30, "<H"), "commentlen": (32, "<H"), "disk": (34, "<H"), "external_attr": (38, "<L"),
    "offset": (42, "<L"),
}
LOCAL_FIELDS = {
    "flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<L"), "csize": (18, "<L"),
    "usize": (22, "<L"), "namelen": (26, "<H"), "extralen": (28, "<H"),
}
EOCD_FIELDS = {"disk_entries": (8, "<H"), "entries": (10, "<H"), "cd_size": (12, "<L"), "cd_offset": (16, "<L")}
SIGNATURES = {"cd": (b"PK\x01\x02", CD_FIELDS), "local": (b"PK\x03\x04", LOCAL_FIELDS), "eocd": (b"PK\x05\x06", EOCD_FIELDS)}


def field_value(fmt: str) -> st.SearchStrategy[int]:
    top = 0xFFFF if fmt == "<H" else 0xFFFFFFFF
    # Boundaries matter most: 0, the zip64 marker (all ones), just under, and huge sizes.
    return st.sampled_from([v for v in (0, 1, 0x8, 0x800, top - 1, top, 0xA1FF << 16) if v <= top]) | st.integers(0, top)


def record_positions(data: bytes, signature: bytes) -> list[int]:
    out, pos = [], data.find(signature)
    while pos != -1:
        out.append(pos)
        pos = data.find(signature, pos + 1)
    return out


@st.composite
def header_patches(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with 1-3 header fields (central, local or end record) set to drawn values."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        signature, fields = SIGNATURES[draw(st.sampled_from(sorted(SIGNATURES)))]
        positions = record_positions(data, signature)
        assume(positions)
        pos = draw(st.sampled_from(positions))
        offset, fmt = fields[draw(st.sampled_from(sorted(fields)))]
        if pos + offset + struct.calcsize(fmt) <= len(buf):
            struct.pack_into(fmt, buf, pos + offset, draw(field_value(fmt)))
    return bytes(buf)


# --- properties ----------------------------------------------------------------------------


@fuzz
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    assert parse_or_reject(data) is None


@fuzz
@given(st.sampled_from([b"PK\x03\x04", b"PK\x05\x06"]), st.binary(max_size=2048))
def test_zip_magic_then_arbitrary_bytes(magic: bytes, tail: bytes) -> None:
    check(magic + tail)


@fuzz
@given(valid_payloads(), st.data())
def test_truncated_payloads(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data) - 1))
    tail = draw.draw(st.binary(max_size=64))
    assert check(data[:cut] + tail) is None or tail  # a cut with nothing appended never parses


@fuzz
@given(valid_payloads(), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8))
def test_byte_flips(data: bytes, flips: list[tuple[float, int]]) -> None:
    buf = bytearray(data)
    for where, value in flips:
        buf[int(where * len(buf))] = value
    check(bytes(buf))


@fuzz
@given(st.data())
def test_patched_header_fields(draw: st.DataObject) -> None:
    """Huge declared sizes, overlapping offsets, encryption/symlink bits, unknown methods,
    lying entry counts: whatever the headers claim, the answer is a payload or a reason."""
    data = draw.draw(valid_payloads())
    check(draw.draw(header_patches(data)))


def test_patched_huge_declared_size_is_a_zip_bomb() -> None:
    data = payloads.build()
    name = "gradescope_data/autograder/submission/solution.py"
    with_huge = payloads.patch_central(data, name, file_size=0xFFFFFFFE)
    assert parse_or_reject(with_huge) is None
    with pytest.raises(PayloadRejected) as info:
        parse_payload(with_huge, LIMITS)
    assert info.value.reason == "zip_bomb"


deep_paths = st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=4), min_size=1, max_size=300).map("/".join)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@fuzz
@given(valid_payloads(), st.lists(safe_text | deep_paths, min_size=1, max_size=4), contents)
def test_entry_names(data: bytes, names: list[str], content: bytes) -> None:
    """Unicode, control characters, deep and duplicate names (zipfile writes duplicates)."""
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as zf:
        for name in names + names[:1]:
            zf.writestr(zipfile.ZipInfo(name or "x", date_time=(2026, 1, 1, 0, 0, 0)), content)
    parsed = check(out.getvalue())
    assert parsed is None  # the first name is always written twice: a duplicate


name_parts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x01"), max_size=6)


@fuzz
@given(valid_payloads(), name_parts, name_parts)
def test_nul_in_names(data: bytes, before: str, after: str) -> None:
    # ZipInfo cuts names at NUL, so write a placeholder and patch the bytes in both headers.
    placeholder = "gradescope_data/" + before + "\x01" + after
    patched = payloads.with_entry(data, placeholder, b"x").replace(
        placeholder.encode(), placeholder.replace("\x01", "\x00").encode()
    )
    assert check(patched) is None


@fuzz
@given(valid_payloads(), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF))
def test_entry_modes_and_flags(data: bytes, external_attr: int, flags: int) -> None:
    name = "gradescope_data/gradescope/extra"
    patched = payloads.patch_central(
        payloads.with_entry(data, name, b"content"), name, flags=flags
    )
    buf = bytearray(patched)
    struct.pack_into("<L", buf, payloads._central_entry(patched, name) + 38, external_attr)
    parsed = check(bytes(buf))
    if (external_attr >> 28) == 0xA or flags & 0x1:  # S_IFLNK or the encrypted bit
        assert parsed is None


@fuzz
@given(st.sampled_from(["source/inner.zip", "submission/inner.zip", "submission_metadata.json"]), st.integers(1, 3))
def test_nested_zips_are_never_opened(member: str, depth: int) -> None:
    inner = payloads.build(submission={"zeros.bin": b"\0" * 100_000})
    for _ in range(depth - 1):
        inner = payloads.zip_files({"inner.zip": inner})
    if member == "submission_metadata.json":
        assert check(payloads.build(inner)) is None
        return
    files = {member.split("/")[0]: {member.split("/")[1]: inner}}
    parsed = check(payloads.build(**files))  # type: ignore[arg-type]
    assert parsed is not None and "inner.zip" in parsed.source_files + parsed.submission_files


@fuzz
@given(json_values)
def test_metadata_of_any_json(meta: Any) -> None:
    parsed = check(payloads.build(json.dumps(meta).encode()))
    if not isinstance(meta, dict):
        assert parsed is None


def at_path(meta: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(meta))
    node = copy
    for key in path[:-1]:
        node = node[key] if isinstance(node, dict) else node[0]
    if isinstance(node, list):
        node = node[0]
    node[path[-1]] = value
    return copy


FIELDS = [("id",), ("assignment",), ("users",), ("created_at",), ("assignment", "id"), ("assignment", "course_id"),
          ("assignment", "title"), ("assignment", "total_points"), ("users", "id"), ("users", "email"),
          ("users", "name"), ("users", "sid")]
wrong_values = json_values | st.sampled_from(
    ["", " 12 ", "²", "١٢", "9" * 5000, "1e400", "nan", "-inf", 10**30, -1, 0, 2**63, 1e400, "\u0000", "\ud800"]
)


@fuzz
@given(st.sampled_from(FIELDS), wrong_values)
def test_metadata_fields_of_wrong_types(path: tuple[str, ...], value: Any) -> None:
    text = json.dumps(at_path(payloads.metadata(), path, value), allow_nan=True)
    check(payloads.build(text.encode()))


@fuzz
@given(json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
def test_any_results_are_recorded_not_rejected(raw: bytes) -> None:
    parsed = check(payloads.build(results=raw))
    assert parsed is not None


# --- memory bound, worst cases -------------------------------------------------------------


def peak_of(data: bytes, limits: Limits) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(PayloadRejected):
            parse_payload(data, limits)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_near_the_member_cap_for_a_member_at_the_cap() -> None:
    cap = 4 * MiB
    source = {**payloads.SOURCE, "big.bin": os.urandom(cap - 64 * 1024)}
    data = payloads.build(source=source, compression=zipfile.ZIP_STORED)
    assert parse_payload(data, Limits(max_uncompressed_bytes=cap))
    assert peak_of(data, Limits(max_uncompressed_bytes=cap)) < 3 * cap


def test_memory_for_a_lying_member_is_bounded_by_the_cap() -> None:
    # A member that inflates far past its declared size is cut off at the remaining cap.
    cap = 4 * MiB
    data = payloads.build(source={**payloads.SOURCE, "zeros.bin": b"\0" * (64 * MiB)})
    lying = payloads.patch_central(data, "gradescope_data/autograder/source/zeros.bin", file_size=10)
    assert peak_of(lying, Limits(max_uncompressed_bytes=cap)) < 3 * cap


def test_memory_for_json_heavy_metadata_is_a_fixed_multiple_of_its_size() -> None:
    # Worst case for Python objects per JSON byte ("{}," is 3 bytes, a dict 64): measured 26x.
    body = b"{}," * (MiB // 12)
    meta = b'{"id": 1, "assignment": {"id": 1, "course_id": 1}, "x": [' + body + b"{}]}"
    data = payloads.build(meta, compression=zipfile.ZIP_STORED)
    peak = peak_of(data, Limits())
    assert peak < 32 * len(meta), f"{peak / len(meta):.1f} bytes per JSON byte"
