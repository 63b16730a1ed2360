"""The worker registry: who grades, where, on what hardware, and whether it is alive.

Celery workers register themselves at start (see :mod:`greengrader.tasks.workers`); the
original system's workers announced themselves with an MQTT message on
``workers/register``, which the bridge hands to :func:`register_worker` unchanged. Both
shapes are normalised here into one :class:`WorkerFacts` and upserted by hostname.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from greengrader.errors import InvalidWorkerFacts, UnknownRegion
from greengrader.models.infra import Worker

if TYPE_CHECKING:
    from greengrader.context import Context

log = logging.getLogger(__name__)

CPUINFO_PATH = Path("/proc/cpuinfo")

# Spellings seen in registration messages (after lower-casing and turning spaces and
# dashes into underscores) -> our field names. The original worker sent "cpu model name",
# "clock rate", "cache size" and "memory size"; the others are common variants.
_ALIASES: dict[str, str] = {
    "hostname": "hostname", "name": "hostname", "host": "hostname", "node": "hostname",
    "worker": "hostname", "node_name": "hostname",
    "ip": "ip", "ip_address": "ip", "address": "ip", "host_ip": "ip",
    "cpu_model_name": "cpu_model", "model_name": "cpu_model", "cpu_model": "cpu_model",
    "cpu": "cpu_model", "cpu_name": "cpu_model", "brand_raw": "cpu_model",
    "clock_rate": "clock_mhz", "clock": "clock_mhz", "clock_mhz": "clock_mhz",
    "cpu_mhz": "clock_mhz", "mhz": "clock_mhz", "cpu_clock": "clock_mhz", "frequency": "clock_mhz",
    "sockets": "sockets", "socket_count": "sockets", "num_sockets": "sockets",
    "cores": "cores", "cpu_cores": "cores", "core_count": "cores", "num_cores": "cores",
    "cache_size": "cache_size", "cache": "cache_size",
    "memory_size": "memory_bytes", "memory": "memory_bytes", "mem": "memory_bytes",
    "memory_bytes": "memory_bytes", "mem_total": "memory_bytes", "memtotal": "memory_bytes",
    "total_memory": "memory_bytes",
    "region": "region",
}

_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
# Memory units are binary, as /proc/meminfo's "kB" and `free` are; SI spellings included.
_BYTE_UNITS = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "ki": 1 << 10,
    "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "mi": 1 << 20,
    "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "gi": 1 << 30,
    "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40, "ti": 1 << 40,
}
_HZ_UNITS = {"hz": 1e-6, "khz": 1e-3, "mhz": 1.0, "ghz": 1e3}


@dataclass(frozen=True)
class WorkerFacts:
    """What we know about one grading machine (all but the hostname may be unknown)."""

    hostname: str
    ip: str | None = None
    cpu_model: str | None = None
    clock_mhz: float | None = None
    sockets: int | None = None
    cores: int | None = None
    cache_size: str | None = None
    memory_bytes: int | None = None
    region: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- Collecting facts about this machine ----------------------------------------------

def _proc_cpuinfo(path: Path = CPUINFO_PATH) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per logical CPU (empty off Linux)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    blocks: list[dict[str, str]] = []
    for chunk in text.split("\n\n"):
        entry = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def count_sockets(cpus: list[dict[str, str]]) -> int | None:
    """Distinct ``physical id`` values; None when the kernel does not report them."""
    ids = {cpu["physical id"] for cpu in cpus if "physical id" in cpu}
    return len(ids) or None


def primary_ip() -> str | None:
    """The address of the interface that would carry outbound traffic (nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("10.255.255.255", 1))
            return str(sock.getsockname()[0])
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


def _cpu_info() -> dict[str, Any]:
    import cpuinfo

    try:
        info: dict[str, Any] = cpuinfo.get_cpu_info()
    except Exception:  # py-cpuinfo probes in a subprocess and can fail in odd sandboxes
        log.warning("py-cpuinfo could not read CPU details", exc_info=True)
        return {}
    return info


def _clock_mhz(info: Mapping[str, Any], cpus: list[dict[str, str]]) -> float | None:
    import psutil

    freq = psutil.cpu_freq()
    if freq is not None and (freq.max or freq.current):
        return float(freq.max or freq.current)
    advertised = info.get("hz_advertised") or info.get("hz_actual")
    if advertised and advertised[0]:
        return float(advertised[0]) / 1e6
    if cpus and "cpu MHz" in cpus[0]:
        return float(cpus[0]["cpu MHz"])
    return None


def _cache_size(info: Mapping[str, Any], cpus: list[dict[str, str]]) -> str | None:
    if cpus and cpus[0].get("cache size"):
        return cpus[0]["cache size"]
    for key in ("l3_cache_size", "l2_cache_size"):
        size = info.get(key)
        if isinstance(size, int) and size > 0:
            return f"{size // 1024} KB"
    return None


def collect_facts(hostname: str | None = None) -> WorkerFacts:
    """Facts about this machine from py-cpuinfo, psutil and ``/proc/cpuinfo``.

    Takes about a second (py-cpuinfo probes in a subprocess), so callers run it off the
    hot path.
    """
    import psutil

    info = _cpu_info()
    cpus = _proc_cpuinfo()
    model = info.get("brand_raw") or (cpus[0].get("model name") if cpus else None)
    return WorkerFacts(
        hostname=hostname or socket.gethostname(),
        ip=primary_ip(),
        cpu_model=str(model) if model else None,
        clock_mhz=_clock_mhz(info, cpus),
        sockets=count_sockets(cpus) or 1,
        cores=psutil.cpu_count(logical=False) or psutil.cpu_count(logical=True),
        cache_size=_cache_size(info, cpus),
        memory_bytes=int(psutil.virtual_memory().total),
    )


# --- Normalising registration messages --------------------------------------------------

def _canonical_key(key: str) -> str:
    return re.sub(r"[\s\-.]+", "_", key.strip().lower())


def parse_bytes(value: Any) -> int | None:
    """``"16 GB"``, ``"16384 MB"``, ``"16Gi"``, ``"16323412 kB"`` or a byte count -> bytes."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int | float):
        return int(value)
    match = _QUANTITY.match(str(value))
    if not match or match.group(2).lower() not in _BYTE_UNITS:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])


def parse_mhz(value: Any) -> float | None:
    """``"2.4 GHz"``, ``"2400 MHz"``, ``"2400.000"``, ``2.4`` or Hz -> MHz.

    A bare number is read by magnitude: under 100 is GHz (no CPU runs at 99 MHz any more),
    over a million is Hz, anything between is MHz.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("not a clock rate")
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"not a clock rate: {value!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit:
        if unit not in _HZ_UNITS:
            raise ValueError(f"not a clock rate: {value!r}")
        return number * _HZ_UNITS[unit]
    if number < 100:
        return number * 1e3
    if number > 1e6:
        return number / 1e6
    return number


def _parse_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("not a count")
    number = float(value)
    if number < 0 or number != int(number):
        raise ValueError(f"not a count: {value!r}")
    return int(number)


def _parse_ip(value: Any) -> str | None:
    # `hostname -I` (what the original hook used) prints every address, space separated.
    for token in str(value or "").replace(",", " ").split():
        try:
            return str(ipaddress.ip_address(token))
        except ValueError:
            continue
    return None


def _parse_cache(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{int(value) // 1024} KB"
    return str(value).strip()[:100] or None


def _text(value: Any, limit: int) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text[:limit] or None


_PARSERS: dict[str, Any] = {
    "ip": _parse_ip,
    "cpu_model": lambda v: _text(v, 300),
    "clock_mhz": parse_mhz,
    "sockets": _parse_int,
    "cores": _parse_int,
    "cache_size": _parse_cache,
    "memory_bytes": parse_bytes,
    "region": lambda v: _text(v, 100),
    "hostname": lambda v: _text(v, 300),
}


def normalise_facts(facts: Mapping[str, Any] | WorkerFacts) -> WorkerFacts:
    """Any accepted registration shape -> :class:`WorkerFacts`.

    Unknown keys are ignored (messages carry extras such as timestamps); a value that is
    present but unreadable raises :class:`InvalidWorkerFacts` naming the key, rather than
    silently storing nonsense.
    """
    if isinstance(facts, WorkerFacts):
        return facts
    if not isinstance(facts, Mapping):
        raise InvalidWorkerFacts("not_an_object", "a registration must be a JSON object")
    fields: dict[str, Any] = {}
    for raw_key, raw_value in facts.items():
        name = _ALIASES.get(_canonical_key(str(raw_key)))
        if name is None or (name in fields and fields[name] is not None):
            continue
        try:
            fields[name] = _PARSERS[name](raw_value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidWorkerFacts("bad_value", f"{raw_key}: {raw_value!r}") from None
    if not fields.get("hostname"):
        raise InvalidWorkerFacts("missing_hostname", "a registration needs a hostname or name")
    return WorkerFacts(**fields)


def parse_registration_message(payload: bytes | str) -> WorkerFacts:
    """An MQTT ``workers/register`` payload (JSON object) -> :class:`WorkerFacts`."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidWorkerFacts("not_json", str(exc)) from None
    return normalise_facts(data)


# --- The registry in the database --------------------------------------------------------

_FACT_COLUMNS = ("ip", "cpu_model", "clock_mhz", "sockets", "cores", "cache_size", "memory_bytes", "region")


def register_worker(
    ctx: Context,
    facts: Mapping[str, Any] | WorkerFacts,
    region: str | None = None,
    source: str = "mqtt",
    *,
    regions: Sequence[str] | None = None,
    concurrency: int | None = None,
    started_at: datetime | None = None,
) -> WorkerFacts:
    """Upsert the worker row for ``facts`` (by hostname) and mark it alive now.

    ``region`` overrides one carried in the facts; either must be a known region. A
    Celery worker consuming several region queues passes them all as ``regions`` (the
    first is its ``region``) and its pool size as ``concurrency``: placement counts it
    as live capacity in each. A re-registration keeps facts the new message leaves out,
    so a terse message never erases what a fuller one reported. ``registered_at`` is
    ``started_at`` when given (the worker process's start, so re-registering after a
    database outage does not look like a restart to recovery), else now.
    """
    normal = normalise_facts(facts)
    region = region or (regions[0] if regions else None) or normal.region
    served = list(regions or ([region] if region else []))
    for name in served:
        if name not in ctx.regions:
            raise InvalidWorkerFacts("unknown_region", str(UnknownRegion(f"unknown region {name!r}")))
    values = {**normal.as_dict(), "region": region}
    now = ctx.now()
    row = {**values, "source": source[:20], "registered_at": started_at or now, "last_heartbeat": now,
           "regions": served or None, "concurrency": concurrency}
    dialect_insert = sqlite.insert if ctx.db.is_sqlite else postgresql.insert
    stmt = dialect_insert(Worker).values(**row)
    table = Worker.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.hostname],
        set_={
            **{col: func.coalesce(stmt.excluded[col], table[col]) for col in _FACT_COLUMNS},
            "source": stmt.excluded.source,
            "regions": stmt.excluded.regions,
            "concurrency": stmt.excluded.concurrency,
            "registered_at": stmt.excluded.registered_at,
            "last_heartbeat": stmt.excluded.last_heartbeat,
        },
    )
    with ctx.db.transaction() as session:
        session.execute(stmt)
    log.info("registered worker %s (region %s, source %s)", normal.hostname, region, source)
    return WorkerFacts(**values)


def heartbeat(ctx: Context, hostname: str) -> bool:
    """Mark ``hostname`` alive now; False if it is not registered (so it should register)."""
    with ctx.db.transaction() as session:
        result = session.execute(
            update(Worker).where(Worker.hostname == hostname).values(last_heartbeat=ctx.now())
        )
    return bool(getattr(result, "rowcount", 0))


def list_workers(ctx: Context) -> list[Worker]:
    """All registered workers, most recently seen first."""
    with ctx.db.session() as session:
        return list(session.scalars(select(Worker).order_by(Worker.last_heartbeat.desc())))
