"""Where carbon data files live: registered files, a data folder, and the parsed cache.

``carbon import`` records files in ``<home>/carbon/files.json`` (optionally copying them to
``<home>/carbon/files/``). ``GREENGRADER_CARBON_DATA_DIR`` adds every file found under a
folder. Parsing a file once writes ``<home>/cache/carbon/<key>.npz`` (key = path, size,
mtime, emission factor and parser version), so later loads skip CSV parsing entirely.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greengrader.carbon.formats import EmissionFactor, Format, RawSeries, parse_file
from greengrader.errors import CarbonDataError

log = logging.getLogger(__name__)
PARSER_VERSION = 1
DATA_SUFFIXES = (".csv", ".csv.gz", ".json")


@dataclass(frozen=True)
class FileEntry:
    """One data file known to the store and the zones it holds."""

    path: Path
    fmt: Format
    zones: tuple[str, ...]
    aliases: tuple[str, ...]
    source: str
    signal: str


def _is_data_file(p: Path) -> bool:
    return p.is_file() and p.name.endswith(DATA_SUFFIXES) and not p.name.startswith(".")


class CarbonStore:
    """Registered files + data folder, with a per-file parsed cache."""

    def __init__(
        self, home: Path, data_dir: Path | None = None, *, factor: EmissionFactor = "lifecycle"
    ) -> None:
        self.home = home
        self.data_dir = data_dir
        self.factor: EmissionFactor = factor
        self.cache_dir = home / "cache" / "carbon"
        self.manifest_path = home / "carbon" / "files.json"

    # -- manifest -------------------------------------------------------------------------
    def registered(self) -> list[Path]:
        if not self.manifest_path.exists():
            return []
        try:
            data = json.loads(self.manifest_path.read_text())
            return [Path(item["path"]) for item in data.get("files", [])]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CarbonDataError(f"{self.manifest_path}: unreadable manifest: {exc}") from None

    def _write_manifest(self, paths: list[Path]) -> None:
        self.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"files": [{"path": str(p)} for p in paths]}
        _atomic_write(self.manifest_path, json.dumps(doc, indent=1).encode())

    def register(self, path: Path, *, copy: bool = False) -> FileEntry:
        """Parse ``path`` (validating it) and record it; ``copy`` keeps a private copy."""
        path = path.resolve()
        if not path.is_file():
            raise CarbonDataError(f"{path}: no such file")
        if copy:
            target = self.home / "carbon" / "files" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            path = target
        entry = self.entry(path)
        paths = [p for p in self.registered() if p != path]
        self._write_manifest([*paths, path])
        return entry

    def files(self) -> list[Path]:
        """Every known data file: registered first, then the data folder (sorted)."""
        out = [p for p in self.registered() if p.exists()]
        if self.data_dir is not None and self.data_dir.exists():
            found = sorted(p.resolve() for p in self.data_dir.rglob("*") if _is_data_file(p))
            out += [p for p in found if p not in out]
        return out

    # -- parsed cache ---------------------------------------------------------------------
    def _key(self, path: Path) -> str:
        st = path.stat()
        ident = f"{path}|{st.st_size}|{st.st_mtime_ns}|{self.factor}|{PARSER_VERSION}"
        return hashlib.sha256(ident.encode()).hexdigest()[:24]

    def load(self, path: Path) -> list[RawSeries]:
        """The file's parsed series, from the cache when fresh."""
        try:
            key = self._key(path)
        except OSError as exc:
            raise CarbonDataError(f"{path}: cannot read: {exc.strerror}") from None
        cached = self.cache_dir / f"{key}.npz"
        if cached.exists():
            try:
                return _read_npz(cached)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable cache %s: %s", cached, exc)
        raws = parse_file(path, factor=self.factor)
        self._write_cache(cached, key, path, raws)
        return raws

    def _write_cache(self, cached: Path, key: str, path: Path, raws: list[RawSeries]) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            arrays: dict[str, Any] = {}
            meta = []
            for i, r in enumerate(raws):
                arrays[f"ts{i}"], arrays[f"v{i}"] = r.ts, r.values
                meta.append({
                    "zone": r.zone, "signal": r.signal, "source": r.source, "fmt": r.fmt,
                    "step_hint_s": r.step_hint_s, "notes": r.notes, "aliases": r.aliases,
                })
            arrays["meta"] = np.array(json.dumps(meta))
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".npz")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, cached)
            self._index_update(key, path, raws)
        except OSError as exc:
            log.warning("cannot write carbon cache %s: %s", cached, exc)

    # -- zone index (which file holds which zones, without loading arrays) -----------------
    def _index(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.cache_dir / "index.json").read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _index_update(self, key: str, path: Path, raws: list[RawSeries]) -> None:
        index = self._index()
        index[key] = {
            "path": str(path), "fmt": raws[0].fmt, "source": raws[0].source, "signal": raws[0].signal,
            "zones": [r.zone for r in raws], "aliases": [a for r in raws for a in r.aliases],
        }
        _atomic_write(self.cache_dir / "index.json", json.dumps(index).encode())

    def entry(self, path: Path) -> FileEntry:
        """Zones and source of ``path`` (parses it once if not cached yet)."""
        info = self._index().get(self._key(path))
        if info is None:
            self.load(path)
            info = self._index().get(self._key(path))
        if info is None:  # cache not writable: parse without it
            raws = parse_file(path, factor=self.factor)
            info = {"fmt": raws[0].fmt, "source": raws[0].source, "signal": raws[0].signal,
                    "zones": [r.zone for r in raws], "aliases": [a for r in raws for a in r.aliases]}
        return FileEntry(path, info["fmt"], tuple(info["zones"]), tuple(info["aliases"]),
                         info["source"], info["signal"])

    def entries(self) -> Iterator[FileEntry]:
        for path in self.files():
            try:
                yield self.entry(path)
            except CarbonDataError as exc:
                log.warning("skipping carbon file %s: %s", path, exc)


def _read_npz(path: Path) -> list[RawSeries]:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        return [
            RawSeries(
                zone=m["zone"], ts=data[f"ts{i}"], values=data[f"v{i}"], signal=m["signal"],
                source=m["source"], fmt=m["fmt"], step_hint_s=m["step_hint_s"], notes=list(m["notes"]),
                aliases=list(m.get("aliases", [])),
            )
            for i, m in enumerate(meta)
        ]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
