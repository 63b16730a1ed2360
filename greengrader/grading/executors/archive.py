"""The job's files as a tar archive, the form every backend delivers them in."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping


def job_tar(files: Mapping[str, bytes], *, uid: int = 0, prefix: str = "") -> bytes:
    """An in-memory tar of the job's files plus the writable ``results/`` and stats dirs."""
    buf = io.BytesIO()
    dirs = {"submission", "results"}
    for path in files:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs):
            info = tarfile.TarInfo(prefix + name)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, uid
            info.mtime = int(time.time())
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(prefix + name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, uid, uid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
