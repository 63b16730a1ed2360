"""Parsers for downloaded carbon-intensity files, one function per format.

Every parser returns :class:`RawSeries` records: epoch-second timestamps (UTC) and values
already converted to gCO2eq/kWh, plus the signal type. Regularising (gaps, duplicates,
common step) is :mod:`greengrader.carbon.resample`'s job.

Time zones: Electricity Maps stamps are labelled UTC; Let's Wait Awhile, the WattTime-style
wide CSV and naive Carbon Aware SDK times are UTC too (their series run straight through
the DST changes with no gap or repeat), so a naive stamp is read as UTC everywhere.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from greengrader.carbon.base import Signal
from greengrader.errors import CarbonDataError
from greengrader.times import parse_instant

Format = Literal["electricitymaps", "sgip-moer", "lets-wait-awhile", "watttime-wide", "carbon-aware-sdk"]
FORMATS: tuple[Format, ...] = (
    "electricitymaps", "sgip-moer", "lets-wait-awhile", "watttime-wide", "carbon-aware-sdk",
)
EmissionFactor = Literal["lifecycle", "direct"]
KG_TO_G = 1000.0
# Let's Wait Awhile file names use these short country names.
_LWA_ZONES = {"ger": "DE", "de": "DE", "gb": "GB", "fr": "FR", "cal": "US-CAL-CISO"}


@dataclass
class RawSeries:
    """One zone's points from one file, before regularising."""

    zone: str
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    signal: Signal
    source: str
    fmt: Format
    step_hint_s: int | None = None
    notes: list[str] = field(default_factory=list)
    # Other names the zone goes by (e.g. the file name's zone when the export's Zone Id differs).
    aliases: list[str] = field(default_factory=list)


def parse_time(text: str) -> int:
    """ISO-8601 stamp -> epoch seconds; a stamp without offset is UTC."""
    try:
        return int(parse_instant(text).timestamp())
    except ValueError:
        raise CarbonDataError(f"unreadable timestamp {text!r}") from None


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig drops the BOM some exports start with.
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig", newline="")


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            return [h.strip() for h in header], [r for r in reader if r]
    except (OSError, UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile) as exc:
        raise CarbonDataError(f"{path}: cannot read: {exc}") from None


def _floats(path: Path, column: str, cells: Iterable[str]) -> npt.NDArray[np.float64]:
    try:
        return np.array([float(c) if c.strip() else np.nan for c in cells], dtype=np.float64)
    except ValueError as exc:
        raise CarbonDataError(f"{path}: column {column!r}: {exc}") from None


def _times(cells: Iterable[str]) -> npt.NDArray[np.int64]:
    return np.array([parse_time(c) for c in cells], dtype=np.int64)


def _column(path: Path, header: list[str], *prefixes: str) -> int:
    for prefix in prefixes:
        for i, name in enumerate(header):
            if name.startswith(prefix):
                return i
    raise CarbonDataError(f"{path}: no column starting with {prefixes[0]!r}")


def parse_electricitymaps(path: Path, factor: EmissionFactor = "lifecycle") -> list[RawSeries]:
    """Electricity Maps CSV export (hourly), lifecycle (LCA) or direct factor."""
    header, rows = _rows(path)
    t_col = _column(path, header, "Datetime (UTC)")
    z_col = _column(path, header, "Zone Id")
    label = "Carbon Intensity gCO₂eq/kWh (LCA)" if factor == "lifecycle" else "Carbon Intensity gCO₂eq/kWh (direct)"
    v_col = _column(path, header, label, label.replace("₂", "2"))
    est_col = header.index("Data Estimated") if "Data Estimated" in header else None
    out: list[RawSeries] = []
    for zone in dict.fromkeys(r[z_col] for r in rows):
        zr = [r for r in rows if r[z_col] == zone]
        raw = RawSeries(
            zone=zone, ts=_times(r[t_col] for r in zr), values=_floats(path, label, (r[v_col] for r in zr)),
            signal="average", source=f"electricitymaps:{factor}", fmt="electricitymaps", step_hint_s=3600,
        )
        stem_zone = path.name.split("_")[0]
        if stem_zone != zone and len(rows) == len(zr):
            raw.aliases.append(stem_zone)
        if est_col is not None:
            n_est = sum(1 for r in zr if r[est_col].strip().lower() == "true")
            if n_est:
                raw.notes.append(f"{n_est} of {len(zr)} hours estimated by Electricity Maps")
        out.append(raw)
    return out


def parse_sgip_moer(path: Path) -> list[RawSeries]:
    """SGIP/WattTime MOER (kg CO2/kWh, 5-minute, marginal); zone from the file name."""
    header, rows = _rows(path)
    t_col, v_col = _column(path, header, "time"), _column(path, header, "moer")
    m = re.match(r"(SGIP_[A-Z0-9]+_[A-Z0-9]+)", path.name)
    zone = m.group(1) if m else path.name.split(".")[0]
    values = _floats(path, "moer", (r[v_col] for r in rows)) * KG_TO_G
    return [RawSeries(zone, _times(r[t_col] for r in rows), values, "marginal", "sgip-moer", "sgip-moer", 300)]


def parse_lets_wait_awhile(path: Path) -> list[RawSeries]:
    """Let's Wait Awhile CSV: ``Time``, ``Carbon Intensity`` (g/kWh, average)."""
    header, rows = _rows(path)
    t_col, v_col = _column(path, header, "Time"), _column(path, header, "Carbon Intensity")
    stem = path.name.split(".")[0].removesuffix("_ci").lower()
    zone = _LWA_ZONES.get(stem, stem.upper())
    values = _floats(path, "Carbon Intensity", (r[v_col] for r in rows))
    return [RawSeries(zone, _times(r[t_col] for r in rows), values, "average", "lets-wait-awhile", "lets-wait-awhile")]


def parse_watttime_wide(path: Path, signal: Signal = "marginal") -> list[RawSeries]:
    """WattTime-style wide CSV: first column time, one column per region (g/kWh MOER)."""
    header, rows = _rows(path)
    if len(header) < 2:
        raise CarbonDataError(f"{path}: a wide CSV needs a time column and at least one region")
    ts = _times(r[0] for r in rows)
    return [
        RawSeries(name.upper(), ts, _floats(path, name, (r[i] for r in rows)), signal, "watttime", "watttime-wide")
        for i, name in enumerate(header) if i > 0
    ]


def _duration_s(text: str) -> int | None:
    parts = text.split(":")
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        h, m, s = (int(p) for p in (*parts, "0")[:3])
        return h * 3600 + m * 60 + s
    return None


def parse_carbon_aware_sdk(path: Path) -> list[RawSeries]:
    """Carbon Aware SDK emissions JSON: a list (or ``{"Emissions": [...]}``) of
    ``Location``, ``Time``, ``Rating`` (g/kWh) and optional ``Duration`` (``HH:MM``)."""
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise CarbonDataError(f"{path}: not valid JSON: {exc}") from None
    items = doc.get("Emissions") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise CarbonDataError(f"{path}: expected a list of emissions records")
    description = str(doc.get("Description", "")) if isinstance(doc, dict) else ""
    by_zone: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if not isinstance(item, dict) or not {"Location", "Time", "Rating"} <= item.keys():
            raise CarbonDataError(f"{path}: record without Location/Time/Rating: {item!r}"[:200])
        by_zone.setdefault(str(item["Location"]), []).append(item)
    out = []
    for zone, recs in by_zone.items():
        raw = RawSeries(
            zone, _times(str(r["Time"]) for r in recs),
            _floats(path, "Rating", (str(r["Rating"]) for r in recs)), "average", "carbon-aware-sdk",
            "carbon-aware-sdk", _duration_s(str(recs[0].get("Duration", ""))),
        )
        if "fictional" in description.lower():
            raw.notes.append(f"fictional demo data ({description.strip()})")
        out.append(raw)
    return out


def detect_format(path: Path) -> Format:
    """Guess the format from the name and the first line."""
    if path.suffix.lower() == ".json":
        return "carbon-aware-sdk"
    try:
        with _open_text(path) as fh:
            first = fh.readline().strip()
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise CarbonDataError(f"{path}: cannot read: {exc}") from None
    if first.startswith("Datetime (UTC)"):
        return "electricitymaps"
    if first.startswith("time,moer"):
        return "sgip-moer"
    if first.startswith("Time,Carbon Intensity"):
        return "lets-wait-awhile"
    if first.count(",") >= 1:
        return "watttime-wide"
    raise CarbonDataError(f"{path}: unrecognised carbon data format (first line {first[:80]!r})")


def parse_file(path: Path, fmt: Format | None = None, *, factor: EmissionFactor = "lifecycle") -> list[RawSeries]:
    """Parse ``path`` (format detected unless given)."""
    fmt = fmt or detect_format(path)
    parsers: dict[str, Callable[[Path], list[RawSeries]]] = {
        "electricitymaps": lambda p: parse_electricitymaps(p, factor),
        "sgip-moer": parse_sgip_moer,
        "lets-wait-awhile": parse_lets_wait_awhile,
        "watttime-wide": parse_watttime_wide,
        "carbon-aware-sdk": parse_carbon_aware_sdk,
    }
    if fmt not in parsers:
        raise CarbonDataError(f"unknown carbon data format {fmt!r} (known: {', '.join(FORMATS)})")
    series = parsers[fmt](path)
    if not series or any(s.ts.size == 0 for s in series):
        raise CarbonDataError(f"{path}: no data rows")
    return series
