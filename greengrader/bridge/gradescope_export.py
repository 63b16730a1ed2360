"""Build payloads from a Gradescope "Export Submissions" archive.

The export holds ``submission_metadata.yml`` (keyed by folder name, Ruby-symbol keys such as
``:submitters``, ``:created_at``, ``:score``, sometimes ``:results``) and one folder per
submission (``submission_<id>/``). It carries neither the autograder nor the assignment and
course ids, so those are given by the operator. Each submission becomes a payload in the
nested layout the hook produces and then takes the normal ingestion path (validation,
pseudonymisation, deduplication).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from greengrader.errors import GreengraderError
from greengrader.payload.build import nested_payload

METADATA_FILE = "submission_metadata.yml"


@dataclass(frozen=True)
class AssignmentInfo:
    assignment_id: int
    course_id: int
    title: str = ""
    total_points: float | None = None


class ExportError(GreengraderError):
    """The Gradescope export is unreadable or has no submission metadata."""


def payloads_from_export(export: Path, autograder: Path, info: AssignmentInfo) -> Iterator[tuple[str, bytes]]:
    """Yield ``(folder name, payload zip)`` for each submission in the export."""
    files = _read_export(export)
    meta_path = min((p for p in files if PurePosixPath(p).name == METADATA_FILE), key=len, default=None)
    if meta_path is None:
        raise ExportError(f"no {METADATA_FILE} in {export}")
    prefix = meta_path[: -len(METADATA_FILE)]
    entries = _clean(yaml.safe_load(files[meta_path]) or {})
    if not isinstance(entries, dict):
        raise ExportError(f"{METADATA_FILE} is not a mapping")
    source = {str(p.relative_to(autograder)): p.read_bytes() for p in sorted(autograder.rglob("*")) if p.is_file()}
    for folder, entry in sorted(entries.items()):
        if not isinstance(entry, dict):
            continue
        folder_prefix = f"{prefix}{folder}/"
        submitted = {k[len(folder_prefix):]: v for k, v in files.items() if k.startswith(folder_prefix)}
        yield folder, build_payload(folder, entry, submitted, source, info)


def build_payload(
    folder: str, entry: dict[str, Any], submitted: dict[str, bytes], source: dict[str, bytes], info: AssignmentInfo
) -> bytes:
    match = re.search(r"(\d+)$", folder)
    users = [
        {k: s.get(k) for k in ("name", "sid", "email") if s.get(k) is not None} | ({"id": s["id"]} if "id" in s else {})
        for s in entry.get("submitters") or []
        if isinstance(s, dict)
    ]
    metadata = {
        "id": int(match.group(1)) if match else None,
        "created_at": entry.get("created_at"),
        "assignment": {
            "id": info.assignment_id, "course_id": info.course_id, "title": info.title,
            "total_points": info.total_points,
        },
        "submission_method": "gradescope-export",
        "users": users,
        "previous_submissions": [],
    }
    given = entry.get("results")
    results: dict[str, Any] = given if isinstance(given, dict) else {"score": entry.get("score")}
    return nested_payload(
        hostname="gradescope-export\n", metadata=metadata, results=results, source=source, submission=submitted
    )


def _read_export(export: Path) -> dict[str, bytes]:
    if export.is_dir():
        return {p.relative_to(export).as_posix(): p.read_bytes() for p in export.rglob("*") if p.is_file()}
    try:
        with zipfile.ZipFile(export) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    except zipfile.BadZipFile as exc:
        raise ExportError(f"{export}: {exc}") from None


def _clean(value: Any) -> Any:
    """Ruby-symbol keys (``:score``) become plain keys; dates become ISO strings."""
    if isinstance(value, dict):
        return {str(k).lstrip(":"): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
