"""The payload as a zip archive: structural checks before anything is inflated, then
metered reads of the few members the parser decodes.

Pure functions over the bytes in memory; nothing is ever extracted to disk. The payload is
hostile input: every structural check runs on the central directory and the local headers
*before* any member is decompressed, and decompression itself is metered, so a crafted zip
costs at most the configured caps.
"""

from __future__ import annotations

import lzma
import stat
import struct
import zipfile
import zlib

from greengrader.errors import PayloadRejected
from greengrader.payload.limits import Limits

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_EMPTY_ARCHIVE_MAGIC = b"PK\x05\x06"
_SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# Errors the zip and codec modules raise on malformed input; all mean "corrupt".
ZIP_ERRORS = (
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


def check_envelope(data: bytes, limits: Limits) -> None:
    """What can be told before opening the zip: not empty, under the cap, a zip at all."""
    if not data:
        raise PayloadRejected("empty", "the message has no content")
    if len(data) > limits.max_payload_bytes:
        raise PayloadRejected("too_large", f"{len(data)} bytes > cap {limits.max_payload_bytes}")
    if not data.startswith(_LOCAL_MAGIC) and not data.startswith(_EMPTY_ARCHIVE_MAGIC):
        raise PayloadRejected("not_zip", "no zip signature at offset 0")


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


# --- content (metered decompression of the few members we read) --------------------------


class Meter:
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
