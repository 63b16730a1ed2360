"""The job's files as a tar archive, the form every backend delivers them in."""

from __future__ import annotations

import io
import re
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


# Runs of NULs (tar's padding) in one go; any other byte that is not plain ASCII alone.
_ESCAPED = re.compile(r"(\x00+)|[^\x20-\x24\x26-\x5b\x5d-\x7e\n]")
_OCTAL_DIGITS = frozenset("01234567")


def printf_format(data: bytes) -> str:
    """``data`` as a POSIX ``printf`` format that prints it back byte for byte.

    The shell's printf is a builtin: ``printf "$FILES" | tar -x`` unpacks a job with one
    process where ``base64 -d | tar -x`` needs two, and every process counts under gVisor.
    Printable ASCII stays as it is (``%`` and ``\\`` doubled), every other byte becomes an
    octal escape of one to three digits: three when an octal digit follows, so ``\\0`` then
    ``7`` is not read as ``\\07``. Tar's zero padding costs two characters a byte.
    """
    text = data.decode("latin-1")

    def escape(match: re.Match[str]) -> str:
        digit_follows = match.end() < len(text) and text[match.end()] in _OCTAL_DIGITS
        if match[1]:
            return "\\0" * (len(match[1]) - 1) + ("\\000" if digit_follows else "\\0")
        code = ord(match[0])
        if code in (0x25, 0x5C):
            return "%%" if code == 0x25 else "\\\\"
        return f"\\{code:03o}" if digit_follows else f"\\{code:o}"

    return _ESCAPED.sub(escape, text)


# The directories every assignment image has (grading/images.py creates them).
_IMAGE_DIRS = ("submission",)
_TOP_FILES = ("submission_metadata.json",)


def unpack_script(files: Mapping[str, bytes], root: str = "/autograder") -> str:
    """Shell commands that put the job's files under ``/autograder`` with no process when
    they can: each file written by the shell's builtin ``printf``, when every one lies in a
    directory the image already has; else one ``printf | tar -x`` of the job's tar."""
    if all(_writable_directly(path) for path in files):
        writes = [f"printf -- {_quoted(printf_format(data))} >{_quoted(f'{root}/{path}')}"
                  for path, data in sorted(files.items())]
        return " &&\n".join(writes) + "\n"  # the first failure fails the whole
    parent, _, base = root.rstrip("/").rpartition("/")
    packed = printf_format(job_tar(files, prefix=f"{base}/"))
    return f"printf -- {_quoted(packed)} | tar -x -C {_quoted(parent or '/')}\n"


def _writable_directly(path: str) -> bool:
    parent, _, name = path.rpartition("/")
    if not parent:
        return path in _TOP_FILES
    return parent in _IMAGE_DIRS and name not in ("", ".", "..")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
