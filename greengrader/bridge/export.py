"""Write a stored submission back to a folder (what the original dispatcher exported)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import undefer

from greengrader.errors import NotFound, PayloadRejected
from greengrader.models import Submission, SubmissionPayload
from greengrader.payload.archive import unsafe_name

if TYPE_CHECKING:
    from greengrader.context import Context


def export_submission(ctx: Context, submission_id: int, directory: Path) -> int:
    """Unpack the stored payload into ``directory`` plus ``greengrader.json``; returns files written."""
    with ctx.db.session() as session:
        sub = session.get(Submission, submission_id)
        payload = session.get(SubmissionPayload, submission_id, options=[undefer(SubmissionPayload.data)])
        if sub is None or payload is None:
            raise NotFound(f"submission {submission_id} not found")
        summary = {
            "id": sub.id, "gradescope_id": sub.gradescope_id, "assignment_id": sub.assignment_id,
            "status": sub.status, "sha256": sub.sha256, "gradescope_score": sub.gradescope_score,
            "hostname": sub.hostname, "received_at": sub.received_at.isoformat(), "metadata": sub.metadata_json,
        }
        data = payload.data
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    written = 0
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            target = (root / info.filename).resolve()
            # Stored payloads were validated on ingest; check again before touching the disk.
            if unsafe_name(info.filename) or not target.is_relative_to(root):
                raise PayloadRejected("unsafe_path", info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            written += 1
    (root / "greengrader.json").write_text(json.dumps(summary, indent=2, default=str))
    return written + 1
