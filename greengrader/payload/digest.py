"""Content hashes of a payload: of its bytes (the deduplication key) and of its source folder."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hash(files: Iterable[tuple[str, bytes]]) -> str:
    """Content hash of a folder: sha256 over (relative path, length, content) per file.

    ``files`` come sorted by relative path. Independent of timestamps, compression and
    layout, so the same autograder source gives the same assignment version whichever hook
    zipped it.
    """
    digest = hashlib.sha256()
    for rel, content in files:
        name = rel.encode()
        digest.update(struct.pack("<Q", len(name)) + name + struct.pack("<Q", len(content)))
        digest.update(content)
    return digest.hexdigest()
