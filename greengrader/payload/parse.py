"""Parse and validate a submission payload: the zip a ``run_autograder`` hook publishes.

Pure functions over the bytes in memory; nothing is ever extracted to disk. The payload is
hostile input: every structural check runs on the central directory and the local headers
*before* any member is decompressed, and decompression itself is metered, so a crafted zip
costs at most the configured caps. Every failure is a :class:`PayloadRejected` whose
``reason`` is one of :data:`REASONS`.

Two layouts are accepted, as the hooks in the wild produce both::

    nested: gradescope_data/hostname.txt, gradescope_data/autograder/{source,submission,...}
    flat:   gradescope_data/hostname.txt, gradescope_data/{source,submission,...}
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import math
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Literal

from greengrader.errors import PayloadRejected
from greengrader.settings import Settings

ROOT = "gradescope_data/"
NESTED = ROOT + "autograder/"
METADATA = "submission_metadata.json"
RESULTS = "results/results.json"
HOSTNAME = ROOT + "hostname.txt"

# Caps on the small JSON members we decode ourselves (they are metadata, not student work).
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_HOSTNAME_CHARS = 300
# Gradescope's metadata nests about five levels; deeper JSON only serves to exhaust the
# recursion limit of the code that copies or re-serialises it (pseudonymisation, jsonb).
MAX_JSON_DEPTH = 64

REASONS = frozenset(
    {
        "empty",
        "too_large",
        "not_zip",
        "corrupt_zip",
        "too_many_entries",
        "unsafe_path",
        "duplicate_entry",
        "symlink",
        "encrypted",
        "unsupported_compression",
        "zip_bomb",
        "overlapping_entries",
        "missing_metadata",
        "invalid_metadata",
        "missing_id",
        "wrong_type",
        "missing_source",
    }
)

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# Errors the zip and codec modules raise on malformed input; all mean "corrupt".
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)


@dataclass(frozen=True)
class Limits:
    """Caps applied to one payload (defaults from :class:`Settings`)."""

    max_payload_bytes: int = 64 * 1024 * 1024
    max_uncompressed_bytes: int = 512 * 1024 * 1024
    max_compression_ratio: float = 200.0
    max_zip_entries: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_payload_bytes=settings.max_payload_bytes,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
            max_zip_entries=settings.max_zip_entries,
        )


@dataclass(frozen=True)
class ParsedPayload:
    """What the store needs from a valid payload. ``metadata`` is the raw Gradescope JSON."""

    gradescope_id: int
    assignment_id: int
    course_id: int
    assignment_title: str
    total_points: float | None
    created_at: str | None
    metadata: dict[str, Any]
    users: list[dict[str, Any]]
    hostname: str | None
    results: dict[str, Any] | None
    results_error: str | None
    score: float | None
    source_hash: str
    source_files: tuple[str, ...]
    submission_files: tuple[str, ...]
    layout: Literal["nested", "flat"]
    metadata_path: str
    sha256: str
    size: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_payload(data: bytes, limits: Limits | None = None) -> ParsedPayload:
    """Validate ``data`` and extract what the store needs; raise :class:`PayloadRejected`."""
    return parse_payload_entries(data, limits)[0]


def parse_payload_entries(data: bytes, limits: Limits | None = None) -> tuple[ParsedPayload, list[zipfile.ZipInfo]]:
    """:func:`parse_payload` plus the validated central directory, so a caller that rewrites
    a member (pseudonymisation) need not parse the zip a second time."""
    limits = limits or Limits()
    if not data:
        raise PayloadRejected("empty", "the message has no content")
    if len(data) > limits.max_payload_bytes:
        raise PayloadRejected("too_large", f"{len(data)} bytes > cap {limits.max_payload_bytes}")
    if not data.startswith(_LOCAL_MAGIC) and not data.startswith(b"PK\x05\x06"):
        raise PayloadRejected("not_zip", "no zip signature at offset 0")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            check_structure(data, infos, zf.start_dir, limits)
            return _extract(zf, infos, data, limits), infos
    except PayloadRejected:
        raise
    except _ZIP_ERRORS as exc:
        raise PayloadRejected("corrupt_zip", type(exc).__name__) from None


# --- structural checks (central directory and local headers, nothing decompressed) -------


def check_structure(data: bytes, infos: list[zipfile.ZipInfo], cd_start: int, limits: Limits) -> None:
    if len(infos) > limits.max_zip_entries:
        raise PayloadRejected("too_many_entries", f"{len(infos)} entries > cap {limits.max_zip_entries}")
    seen: set[str] = set()
    for info in infos:
        _check_entry(info, seen)
    _check_overlaps(data, infos, cd_start)
    _check_sizes(infos, limits)


def _check_entry(info: zipfile.ZipInfo, seen: set[str]) -> None:
    name = info.filename
    # zipfile cuts names at the first NUL, so only the name as stored can show one.
    if unsafe_name(name) or unsafe_name(info.orig_filename):
        raise PayloadRejected("unsafe_path", "an entry name is absolute or contains '..'")
    if name in seen:
        raise PayloadRejected("duplicate_entry", "two entries share a name")
    seen.add(name)
    if (info.external_attr >> 16) and stat.S_ISLNK(info.external_attr >> 16):
        raise PayloadRejected("symlink", "symbolic link entries are not accepted")
    if info.flag_bits & 0x1:
        raise PayloadRejected("encrypted", "encrypted entries are not accepted")
    if info.compress_type not in _SUPPORTED_COMPRESSION:
        raise PayloadRejected("unsupported_compression", f"method {info.compress_type}")


def unsafe_name(name: str) -> bool:
    """True for absolute paths, drive letters, backslashes, NUL or ``..`` components."""
    if not name or "\x00" in name or "\\" in name:
        return True
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return True
    return any(part == ".." for part in name.split("/"))


def _check_sizes(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > limits.max_uncompressed_bytes:
        raise PayloadRejected(
            "zip_bomb", f"uncompressed size {total} > cap {limits.max_uncompressed_bytes}"
        )
    # Tiny archives are exempt from the ratio: a few KB of zeros proves nothing.
    if total > 1024 * 1024 and total > limits.max_compression_ratio * max(packed, 1):
        raise PayloadRejected(
            "zip_bomb", f"compression ratio {total / max(packed, 1):.0f} > cap {limits.max_compression_ratio:g}"
        )


def _check_overlaps(data: bytes, infos: list[zipfile.ZipInfo], cd_start: int) -> None:
    """Each entry's local record must lie in its own byte range before the central directory.

    Overlapping records let one compressed stream be referenced many times (a "non-recursive"
    zip bomb); Python 3.11's zipfile does not detect them, so the ranges are checked here.
    """
    end_of_previous = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        start = info.header_offset
        if start < end_of_previous:
            raise PayloadRejected("overlapping_entries", "two entries share bytes")
        end = data_offset(data, info) + info.compress_size
        if end > cd_start:
            raise PayloadRejected("overlapping_entries", "an entry overlaps the central directory")
        end_of_previous = end


def data_offset(data: bytes, info: zipfile.ZipInfo) -> int:
    """Offset of an entry's compressed data (after its local header), validated."""
    start = info.header_offset
    if start < 0 or start + _LOCAL_HEADER.size > len(data):
        raise PayloadRejected("corrupt_zip", "local header out of range")
    fields = _LOCAL_HEADER.unpack_from(data, start)
    if fields[0] != _LOCAL_MAGIC:
        raise PayloadRejected("corrupt_zip", "bad local header signature")
    name_len, extra_len = fields[9], fields[10]
    return int(start + _LOCAL_HEADER.size + name_len + extra_len)


# --- content extraction (metered decompression of the few members we read) -------------


class _Meter:
    """Counts decompressed bytes across all members read from one payload."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0

    def read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, member_cap: int | None = None) -> bytes:
        cap = max(0, min(self.cap - self.used, member_cap if member_cap is not None else self.cap))
        out = bytearray()
        with zf.open(info) as fh:
            while chunk := fh.read(min(65536, cap - len(out) + 1)):
                out += chunk
                if len(out) > cap:
                    raise PayloadRejected("zip_bomb", "a member inflates past its declared cap")
        self.used += len(out)
        return bytes(out)


def _extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], data: bytes, limits: Limits) -> ParsedPayload:
    by_name = {i.filename: i for i in infos}
    layout: Literal["nested", "flat"]
    if NESTED + METADATA in by_name:
        base, layout = NESTED, "nested"
    elif ROOT + METADATA in by_name:
        base, layout = ROOT, "flat"
    else:
        raise PayloadRejected("missing_metadata", f"no {METADATA} under {ROOT} or {NESTED}")
    meter = _Meter(limits.max_uncompressed_bytes)
    metadata = _json_object(meter.read(zf, by_name[base + METADATA], MAX_JSON_BYTES), "invalid_metadata")
    ids = _metadata_ids(metadata)
    results, results_error = _results(zf, by_name.get(base + RESULTS), meter)
    source = sorted(n for n in by_name if n.startswith(base + "source/") and not n.endswith("/"))
    if not source:
        raise PayloadRejected("missing_source", f"no files under {base}source/")
    return ParsedPayload(
        gradescope_id=ids["id"],
        assignment_id=ids["assignment_id"],
        course_id=ids["course_id"],
        assignment_title=ids["title"],
        total_points=ids["total_points"],
        created_at=ids["created_at"],
        metadata=metadata,
        users=ids["users"],
        hostname=_hostname(zf, by_name.get(HOSTNAME), meter),
        results=results,
        results_error=results_error,
        score=score_of(results),
        source_hash=_tree_hash(zf, [by_name[n] for n in source], base + "source/", meter),
        source_files=tuple(n.removeprefix(base + "source/") for n in source),
        submission_files=tuple(
            n.removeprefix(base + "submission/")
            for n in sorted(by_name)
            if n.startswith(base + "submission/") and not n.endswith("/")
        ),
        layout=layout,
        metadata_path=base + METADATA,
        sha256=sha256_hex(data),
        size=len(data),
    )


def _json_object(raw: bytes, reason: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # ValueError: also the int digit limit
        raise PayloadRejected(reason, f"not valid JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise PayloadRejected(reason, f"top level is {type(value).__name__}, not an object")
    problem = unstorable_json(value)
    if problem:
        raise PayloadRejected(reason, problem)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def unstorable_json(value: Any) -> str | None:
    """Why Postgres ``jsonb`` (or a recursive copy) could not take ``value``; None if it can.

    jsonb refuses ``\u0000``, unpaired surrogates and non-finite numbers; such a value
    passing validation would fail every later insert of its batch.
    """
    # Depth-first over iterators: extra memory is O(depth), not O(nodes).
    stack: list[Any] = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, dict | list):
                if len(stack) > MAX_JSON_DEPTH:
                    return f"nested deeper than {MAX_JSON_DEPTH} levels"
                if isinstance(item, dict) and any(_bad_text(key) for key in item):
                    return "a key holds NUL or an unpaired surrogate"
                stack.append(iter(item.values() if isinstance(item, dict) else item))
                break
            if isinstance(item, str) and _bad_text(item):
                return "a string holds NUL or an unpaired surrogate"
            if isinstance(item, float) and not math.isfinite(item):
                return "a number is not finite"
        else:
            stack.pop()
    return None


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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


def _metadata_ids(meta: dict[str, Any]) -> dict[str, Any]:
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
    return {
        "id": _int_id(meta.get("id"), "id"),
        "assignment_id": _int_id(assignment.get("id"), "assignment.id"),
        "course_id": _int_id(assignment.get("course_id"), "assignment.course_id"),
        "title": (_optional_str(assignment.get("title"), "assignment.title") or "")[:500],
        "total_points": _optional_float(assignment.get("total_points"), "assignment.total_points"),
        "created_at": _optional_str(meta.get("created_at"), "created_at"),
        "users": users,
    }


def _results(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, meter: _Meter
) -> tuple[dict[str, Any] | None, str | None]:
    """Gradescope's own results. A broken results.json is recorded, not rejected: an
    autograder that printed into its JSON is exactly the case worth re-running."""
    if info is None:
        return None, "results/results.json is missing"
    try:
        return _json_object(meter.read(zf, info, MAX_JSON_BYTES), "invalid_results"), None
    except PayloadRejected as exc:
        if exc.reason == "zip_bomb":
            raise
        return None, exc.detail


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


def _hostname(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, meter: _Meter) -> str | None:
    if info is None:
        return None
    # NUL is the one character a Postgres text column refuses.
    text = meter.read(zf, info, 4096).decode("utf-8", errors="replace").replace("\x00", "").strip()
    return text[:MAX_HOSTNAME_CHARS] or None


def _tree_hash(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], prefix: str, meter: _Meter) -> str:
    """Content hash of a folder: sha256 over (relative path, length, content), sorted by path.

    Independent of timestamps, compression and layout, so the same autograder source gives
    the same assignment version whichever hook zipped it.
    """
    digest = hashlib.sha256()
    for info in infos:
        content = meter.read(zf, info)
        name = info.filename.removeprefix(prefix).encode()
        digest.update(struct.pack("<Q", len(name)) + name + struct.pack("<Q", len(content)))
        digest.update(content)
    return digest.hexdigest()


def tree_hash_of_files(files: dict[str, bytes]) -> str:
    """:func:`_tree_hash` for a folder held as ``{relative path: content}``."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        name = rel.encode()
        content = files[rel]
        digest.update(struct.pack("<Q", len(name)) + name + struct.pack("<Q", len(content)))
        digest.update(content)
    return digest.hexdigest()
