"""Parse and validate a submission payload: the zip a ``run_autograder`` hook publishes.

Composes the checks of :mod:`~greengrader.payload.archive` (the zip), the layouts of
:mod:`~greengrader.payload.layout`, :mod:`~greengrader.payload.storable` (JSON members) and
:mod:`~greengrader.payload.metadata` (Gradescope's fields). Every failure is a
:class:`PayloadRejected` whose ``reason`` is one of
:data:`~greengrader.payload.reasons.REASONS`.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any, Literal

from greengrader.errors import PayloadRejected
from greengrader.payload.archive import ZIP_ERRORS, Meter, check_envelope, check_structure
from greengrader.payload.digest import sha256_hex, tree_hash
from greengrader.payload.layout import HOSTNAME, METADATA, NESTED, RESULTS, ROOT, SOURCE, SUBMISSION
from greengrader.payload.limits import MAX_HOSTNAME_CHARS, MAX_JSON_BYTES, Limits
from greengrader.payload.metadata import SubmissionFields, score_of, submission_fields
from greengrader.payload.storable import json_object


@dataclass(frozen=True)
class ParsedPayload(SubmissionFields):
    """What the store needs from a valid payload: Gradescope's submission fields and the
    rest of the zip. ``metadata`` is the raw Gradescope JSON."""

    metadata: dict[str, Any]
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


def parse_payload(data: bytes, limits: Limits | None = None) -> ParsedPayload:
    """Validate ``data`` and extract what the store needs; raise :class:`PayloadRejected`."""
    return parse_payload_entries(data, limits)[0]


def parse_payload_entries(data: bytes, limits: Limits | None = None) -> tuple[ParsedPayload, list[zipfile.ZipInfo]]:
    """:func:`parse_payload` plus the validated central directory, so a caller that rewrites
    a member (pseudonymisation) need not parse the zip a second time."""
    limits = limits or Limits()
    check_envelope(data, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            check_structure(data, infos, zf.start_dir, limits)
            return _extract(zf, infos, data, limits), infos
    except PayloadRejected:
        raise
    except ZIP_ERRORS as exc:
        raise PayloadRejected("corrupt_zip", type(exc).__name__) from None


def _extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], data: bytes, limits: Limits) -> ParsedPayload:
    by_name = {i.filename: i for i in infos}
    layout: Literal["nested", "flat"]
    if NESTED + METADATA in by_name:
        base, layout = NESTED, "nested"
    elif ROOT + METADATA in by_name:
        base, layout = ROOT, "flat"
    else:
        raise PayloadRejected("missing_metadata", f"no {METADATA} under {ROOT} or {NESTED}")
    meter = Meter(limits.max_uncompressed_bytes)
    metadata = json_object(meter.read(zf, by_name[base + METADATA], MAX_JSON_BYTES), "invalid_metadata")
    fields = submission_fields(metadata)
    results, results_error = _results(zf, by_name.get(base + RESULTS), meter)
    source_dir, submission_dir = base + SOURCE, base + SUBMISSION
    source = sorted(n for n in by_name if n.startswith(source_dir) and not n.endswith("/"))
    if not source:
        raise PayloadRejected("missing_source", f"no files under {source_dir}")
    return ParsedPayload(
        **vars(fields),  # Gradescope's fields as validated
        metadata=metadata,
        hostname=_hostname(zf, by_name.get(HOSTNAME), meter),
        results=results,
        results_error=results_error,
        score=score_of(results),
        # A generator: one member inflated at a time, under the payload's meter.
        source_hash=tree_hash((n.removeprefix(source_dir), meter.read(zf, by_name[n])) for n in source),
        source_files=tuple(n.removeprefix(source_dir) for n in source),
        submission_files=tuple(
            n.removeprefix(submission_dir)
            for n in sorted(by_name)
            if n.startswith(submission_dir) and not n.endswith("/")
        ),
        layout=layout,
        metadata_path=base + METADATA,
        sha256=sha256_hex(data),
        size=len(data),
    )


def _results(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, meter: Meter
) -> tuple[dict[str, Any] | None, str | None]:
    """Gradescope's own results. A broken results.json is recorded, not rejected: an
    autograder that printed into its JSON is exactly the case worth re-running."""
    if info is None:
        return None, f"{RESULTS} is missing"
    try:
        return json_object(meter.read(zf, info, MAX_JSON_BYTES), "invalid_results"), None
    except PayloadRejected as exc:
        if exc.reason == "zip_bomb":
            raise
        return None, exc.detail


def _hostname(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, meter: Meter) -> str | None:
    if info is None:
        return None
    # NUL is the one character a Postgres text column refuses.
    text = meter.read(zf, info, 4096).decode("utf-8", errors="replace").replace("\x00", "").strip()
    return text[:MAX_HOSTNAME_CHARS] or None
