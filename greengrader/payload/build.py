"""Payload zips built here rather than received: the example assignments and payloads made
from a Gradescope export, in the nested layout the ``run_autograder`` hook produces."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

from greengrader.payload.layout import HOSTNAME, METADATA, NESTED, RESULTS, SOURCE, SUBMISSION


def nested_payload(
    *,
    hostname: str,
    metadata: dict[str, Any],
    results: dict[str, Any],
    source: Mapping[str, bytes],
    submission: Mapping[str, bytes],
    autograder: Mapping[str, bytes] | None = None,
) -> bytes:
    """Zip ``gradescope_data/{hostname.txt, autograder/{source,submission,...}}`` in memory.

    ``source`` and ``submission`` map relative paths to content; ``autograder`` holds other
    files at the autograder folder's top (the hook copies ``run_autograder`` there).
    """
    members = {
        HOSTNAME: hostname.encode(),
        NESTED + METADATA: json.dumps(metadata, indent=2).encode(),
        NESTED + RESULTS: json.dumps(results).encode(),
        **{NESTED + SOURCE + rel: content for rel, content in source.items()},
        **{NESTED + SUBMISSION + rel: content for rel, content in submission.items()},
        **{NESTED + rel: content for rel, content in (autograder or {}).items()},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return out.getvalue()
