"""Payload preparation in bridge worker processes: the same answers as in the bridge
process, and a worker killed mid-flight costs a retry, not the batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from greengrader.bridge.ingest import prepare
from greengrader.bridge.offload import Offload
from greengrader.bridge.records import Accepted, Rejected
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
    got = offload.prepare_later(payloads)()
    want = [prepare(offload.settings, data, topic) for data, topic in payloads]
    assert got == want
    assert [type(p) for p in got] == [Accepted] * (len(payloads) - 1) + [Rejected]


def test_a_killed_worker_is_replaced_and_the_batch_still_prepared(
    offload: Offload, payloads: list[tuple[bytes, str | None]]
) -> None:
    pool = offload._executor()
    for pid in list(pool._processes):  # the worker processes
        os.kill(pid, signal.SIGKILL)
    got = offload.prepare_later(payloads)()
    assert [type(p) for p in got] == [Accepted] * (len(payloads) - 1) + [Rejected]
    assert offload._executor() is not pool


HOLDER = """
import sys, time
from greengrader.bridge.offload import Offload
from greengrader.context import Context
from greengrader.settings import Settings

if __name__ == "__main__":
    settings = Settings(home=sys.argv[1], database_url=f"sqlite:///{sys.argv[1]}/gg.db")
    pool = Offload(Context.from_settings(settings), workers=1)
    pool.start()
    print(*pool._executor()._processes, flush=True)
    time.sleep(120)
"""


def test_workers_leave_when_the_bridge_is_killed(tmp_path: Path) -> None:
    # SIGKILL leaves no chance to shut the pool down; the workers must not outlive it.
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    workers = [int(pid) for pid in holder.stdout.readline().split()]
    assert workers and all(_alive(pid) for pid in workers)
    holder.kill()
    holder.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, the holder, is dead too).
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"
