"""Worker facts: collection on this machine and normalisation of registration messages."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from greengrader.errors import InvalidWorkerFacts, PayloadRejected
from greengrader.ops.workers import (
    WorkerFacts,
    _proc_cpuinfo,
    collect_facts,
    count_sockets,
    normalise_facts,
    parse_bytes,
    parse_mhz,
    parse_registration_message,
)

# The shape the original system's Docker-path workers published on workers/register.
ORIGINAL_MESSAGE = {
    "ip": "10.0.0.5 172.17.0.1 ",
    "name": "grader-7",
    "cpu model name": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
    "clock rate": "2100.000",
    "sockets": "2",
    "cores": "16",
    "cache size": "22528 KB",
    "memory size": "196608 MB",
}


def test_original_message_is_normalised() -> None:
    facts = normalise_facts(ORIGINAL_MESSAGE)
    assert facts == WorkerFacts(
        hostname="grader-7",
        ip="10.0.0.5",
        cpu_model="Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
        clock_mhz=2100.0,
        sockets=2,
        cores=16,
        cache_size="22528 KB",
        memory_bytes=196608 * 2**20,
    )


def test_alternative_spellings_and_numbers() -> None:
    facts = normalise_facts(
        {
            "Hostname": "n1", "model_name": "AMD EPYC", "clock-rate": 2.45, "Sockets": 1,
            "CPU cores": 8.0, "cache_size": 524288, "memory": 17179869184, "region": "us-east",
            "timestamp": "2023-05-01T10:00:00Z",
        }
    )
    assert facts.hostname == "n1"
    assert facts.cpu_model == "AMD EPYC"
    assert facts.clock_mhz == pytest.approx(2450.0)
    assert (facts.sockets, facts.cores) == (1, 8)
    assert facts.cache_size == "512 KB"
    assert facts.memory_bytes == 16 * 2**30
    assert facts.region == "us-east"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2.4 GHz", 2400.0), ("2400 MHz", 2400.0), ("2400.000", 2400.0), (2.4, 2400.0),
     ("2400000000", 2400.0), ("2400000 kHz", 2400.0), (None, None), ("", None)],
)
def test_parse_mhz(raw: object, expected: float | None) -> None:
    assert parse_mhz(raw) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("16 GB", 16 * 2**30), ("16Gi", 16 * 2**30), ("16323412 kB", 16323412 * 1024),
     ("512", 512), (1024, 1024), ("1.5 TiB", int(1.5 * 2**40)), (None, None)],
)
def test_parse_bytes(raw: object, expected: int | None) -> None:
    assert parse_bytes(raw) == expected


@pytest.mark.parametrize(
    "message",
    [
        {"name": "x", "clock rate": "fast"},
        {"name": "x", "memory size": "12 parsecs"},
        {"name": "x", "cores": -2},
        {"name": "x", "sockets": 1.5},
        {"name": "x", "cores": True},
    ],
)
def test_unreadable_values_are_rejected_with_the_key(message: dict[str, object]) -> None:
    with pytest.raises(InvalidWorkerFacts) as info:
        normalise_facts(message)
    assert info.value.reason == "bad_value"
    bad_key = next(k for k in message if k != "name")
    assert bad_key in str(info.value)


def test_hostname_is_required_and_errors_are_payload_rejections() -> None:
    with pytest.raises(PayloadRejected) as info:
        normalise_facts({"ip": "10.0.0.1"})
    assert info.value.reason == "missing_hostname"


def test_bad_ip_is_dropped_not_stored() -> None:
    assert normalise_facts({"name": "x", "ip": "not-an-ip"}).ip is None
    assert normalise_facts({"name": "x", "ip": "fe80::1"}).ip == "fe80::1"


def test_registration_message_bytes() -> None:
    facts = parse_registration_message(json.dumps(ORIGINAL_MESSAGE).encode())
    assert facts.hostname == "grader-7"
    with pytest.raises(InvalidWorkerFacts) as info:
        parse_registration_message(b"\xff{not json")
    assert info.value.reason == "not_json"
    with pytest.raises(InvalidWorkerFacts):
        parse_registration_message(b"[1, 2]")


def test_sockets_from_proc_cpuinfo(tmp_path: Path) -> None:
    sample = tmp_path / "cpuinfo"
    blocks = [f"processor\t: {i}\nmodel name\t: X\nphysical id\t: {i // 2}\n" for i in range(4)]
    sample.write_text("\n".join(blocks))
    cpus = _proc_cpuinfo(sample)
    assert len(cpus) == 4
    assert count_sockets(cpus) == 2
    assert count_sockets([{"processor": "0"}]) is None
    assert _proc_cpuinfo(tmp_path / "missing") == []


def test_collect_facts_describes_this_machine() -> None:
    facts = collect_facts("probe@here")
    assert facts.hostname == "probe@here"
    assert facts.cpu_model
    assert facts.cores is not None and 1 <= facts.cores <= psutil.cpu_count()
    assert facts.memory_bytes == psutil.virtual_memory().total
    assert facts.sockets is not None and facts.sockets >= 1
    assert facts.clock_mhz is None or facts.clock_mhz > 100
    assert facts.ip is None or normalise_facts({"name": "x", "ip": facts.ip}).ip == facts.ip
