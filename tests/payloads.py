"""In-memory builders for valid and hostile submission payloads (shared by the bridge tests)."""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile
from typing import Any

SOURCE = {
    "run_autograder": b"#!/bin/sh\ncd /autograder/source && python3 tests/run_tests.py\n",
    "setup.sh": b"#!/bin/sh\napt-get install -y python3\n",
    "tests/run_tests.py": b"print('tests')\n",
}
REAL_NAME, REAL_EMAIL, REAL_SID = "Ada Lovelace", "ada@example.edu", "A12345678"


def metadata(submission_id: int = 700001, assignment_id: int = 5150, course_id: int = 77) -> dict[str, Any]:
    return {
        "id": submission_id,
        "created_at": "2026-11-21T11:01:00.000000-08:00",
        "assignment": {
            "id": assignment_id, "course_id": course_id, "title": "Bench", "total_points": "10.0",
            "due_date": None, "late_due_date": None, "release_date": None,
            "group_submission": False, "group_size": None,
        },
        "submission_method": "upload",
        "users": [{"email": REAL_EMAIL, "id": 4242, "name": REAL_NAME, "sid": REAL_SID}],
        "previous_submissions": [],
    }


def build(
    meta: dict[str, Any] | bytes | None = None,
    *,
    layout: str = "nested",
    source: dict[str, bytes] | None = None,
    submission: dict[str, bytes] | None = None,
    results: dict[str, Any] | bytes | None = None,
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A payload as the hook zips it; ``meta=b""`` leaves the metadata out."""
    base = "gradescope_data/autograder/" if layout == "nested" else "gradescope_data/"
    files: dict[str, bytes] = {"gradescope_data/hostname.txt": b"10.0.3.17 \n"}
    for rel, content in (SOURCE if source is None else source).items():
        files[base + "source/" + rel] = content
    for rel, content in (submission or {"solution.py": b"def add(a, b):\n    return a + b\n"}).items():
        files[base + "submission/" + rel] = content
    if results is None:
        results = {"score": 10.0, "tests": [{"name": "t", "score": 10.0, "max_score": 10.0}]}
    files[base + "results/results.json"] = results if isinstance(results, bytes) else json.dumps(results).encode()
    meta = metadata() if meta is None else meta
    if meta != b"":
        files[base + "submission_metadata.json"] = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    files.update(extra or {})
    return zip_files(files, compression)


def zip_files(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 21, 12, 0, 0))
            info.compress_type = compression
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, content)
    return out.getvalue()


def with_entry(data: bytes, name: str, content: bytes, mode: int = stat.S_IFREG | 0o644) -> bytes:
    """``data`` plus one more entry (name and mode unchecked: for hostile cases)."""
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as zf:
        info = zipfile.ZipInfo(name, date_time=(2026, 11, 21, 12, 0, 0))
        info.external_attr = mode << 16
        zf.writestr(info, content)
    return out.getvalue()


# Central directory file header: offsets of the fields the hostile builders patch.
_CD_SIG = b"PK\x01\x02"
_CD_FLAGS, _CD_METHOD, _CD_USIZE, _CD_NAMELEN, _CD_OFFSET = 8, 10, 24, 28, 42


def _central_entry(data: bytes, name: str) -> int:
    pos = data.find(_CD_SIG)
    while pos != -1:
        (name_len,) = struct.unpack_from("<H", data, pos + _CD_NAMELEN)
        if data[pos + 46 : pos + 46 + name_len] == name.encode():
            return pos
        pos = data.find(_CD_SIG, pos + 4)
    raise KeyError(name)


def patch_central(data: bytes, name: str, *, flags: int | None = None, method: int | None = None,
                  file_size: int | None = None, offset_of: str | None = None) -> bytes:
    """Rewrite fields of ``name``'s central directory record (what a crafted zip lies about)."""
    buf = bytearray(data)
    pos = _central_entry(data, name)
    if flags is not None:
        struct.pack_into("<H", buf, pos + _CD_FLAGS, flags)
    if method is not None:
        struct.pack_into("<H", buf, pos + _CD_METHOD, method)
    if file_size is not None:
        struct.pack_into("<L", buf, pos + _CD_USIZE, file_size)
    if offset_of is not None:
        other = _central_entry(data, offset_of)
        struct.pack_into("<L", buf, pos + _CD_OFFSET, struct.unpack_from("<L", data, other + _CD_OFFSET)[0])
    return bytes(buf)


def overlapping_bomb() -> bytes:
    """A valid-looking payload whose extra entries all reuse one local record (a
    non-recursive zip bomb: the same compressed bytes counted once per entry)."""
    big = b"\0" * (1024 * 1024)
    data = build(extra={"gradescope_data/gradescope/kernel": big,
                        **{f"gradescope_data/gradescope/copy{i}": b"x" for i in range(3)}})
    for i in range(3):
        data = patch_central(data, f"gradescope_data/gradescope/copy{i}", offset_of="gradescope_data/gradescope/kernel")
    return data


def hostile_cases() -> dict[str, bytes]:
    """One payload per rejection reason (key: the expected reason)."""
    bombs = build(extra={"gradescope_data/gradescope/zeros": b"\0" * (20 * 1024 * 1024)})
    name = "gradescope_data/gradescope/x"
    return {
        "empty": b"",
        "not_zip": b"this is not a zip file at all",
        "corrupt_zip": b"PK\x03\x04" + b"\xff" * 200,
        "unsafe_path": with_entry(build(), "gradescope_data/../../etc/cron.d/evil", b"x"),
        "symlink": with_entry(build(), "gradescope_data/link", b"/etc/shadow", stat.S_IFLNK | 0o777),
        "encrypted": patch_central(build(extra={name: b"secret"}), name, flags=0x1),
        "unsupported_compression": patch_central(build(extra={name: b"data"}), name, method=99),
        "zip_bomb": bombs,
        "overlapping_entries": overlapping_bomb(),
        "missing_metadata": build(b""),
        "invalid_metadata": build(b"{not json"),
        "missing_id": build({**metadata(), "id": None}),
        "wrong_type": build({**metadata(), "id": ["900101"]}),
        "missing_source": build(source={}),
    }
