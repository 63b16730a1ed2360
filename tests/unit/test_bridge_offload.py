"""Payload preparation in bridge worker processes: the same answers as in the bridge
process, and a worker killed mid-flight costs a retry, not the batch."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from greengrader.bridge.ingest import prepare
from greengrader.bridge.offload import Offload
from greengrader.bridge.store import Accepted, Rejected
from greengrader.context import Context
from greengrader.settings import Settings


@pytest.fixture
def payloads(fixtures_dir: Path) -> list[tuple[bytes, str | None]]:
    folder = fixtures_dir / "hello-python" / "payloads"
    return [(p.read_bytes(), "submissions") for p in sorted(folder.glob("*.zip"))] + [(b"not a zip", None)]


@pytest.fixture
def offload(tmp_path: Path) -> Iterator[Offload]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/gg.db")
    pool = Offload(Context.from_settings(settings), workers=1)
    pool.start()
    yield pool
    pool.close()


def test_workers_prepare_what_the_bridge_would(offload: Offload, payloads: list[tuple[bytes, str | None]]) -> None:
    got = offload.prepare_all(payloads)
    want = [prepare(offload.settings, data, topic) for data, topic in payloads]
    assert got == want
    assert [type(p) for p in got] == [Accepted] * (len(payloads) - 1) + [Rejected]


def test_a_killed_worker_is_replaced_and_the_batch_still_prepared(
    offload: Offload, payloads: list[tuple[bytes, str | None]]
) -> None:
    pool = offload._executor()
    for pid in list(pool._processes):  # the worker processes
        os.kill(pid, signal.SIGKILL)
    got = offload.prepare_all(payloads)
    assert [type(p) for p in got] == [Accepted] * (len(payloads) - 1) + [Rejected]
    assert offload._executor() is not pool
