"""Fixtures of the fault suite: one private Postgres cluster per session, the assignment
image built once, Docker's daemon always brought back, and a fresh pipeline per case."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from greengrader.grading.images import ImageBuilder
from greengrader.settings import load_settings
from tests.faults.harness import Pipeline, docker_up, job_containers, running_pipeline
from tests.integration.private_services import PrivatePostgres

DOCKERD = ["dockerd", "--iptables=false", "--bridge=none"]


@pytest.fixture(scope="session")
def fault_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture(scope="session")
def assignment_image(base_image: str, shared_dir: Path) -> str:
    """The hello-python image, built before any case so no case pays for the build."""
    source_dir = shared_dir / "fixtures" / "gradescope" / "hello-python" / "source"
    source = {p.relative_to(source_dir).as_posix(): p.read_bytes() for p in source_dir.rglob("*") if p.is_file()}
    return ImageBuilder(load_settings()).ensure(source, "61001").tag


def start_dockerd() -> None:
    with Path("/var/log/dockerd.log").open("ab") as log:
        subprocess.Popen(DOCKERD, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if docker_up():
            return
        time.sleep(0.5)
    raise AssertionError("dockerd did not come back within 90 s")


@pytest.fixture
def docker_restorer() -> Iterator[None]:
    """Whatever a case does to the daemon, it runs again afterwards."""
    yield
    if not docker_up():
        start_dockerd()


@pytest.fixture
def pipeline_factory(tmp_path: Path, fault_postgres: PrivatePostgres, assignment_image: str,
                     docker_restorer: None) -> Iterator[Any]:
    opened: list[Any] = []
    pipelines: list[Pipeline] = []

    def make(**kwargs: Any) -> Pipeline:
        cm = running_pipeline(tmp_path / f"p{len(opened)}", fault_postgres, **kwargs)
        opened.append(cm)
        pipelines.append(cm.__enter__())
        return pipelines[-1]

    yield make
    for cm in reversed(opened):
        cm.__exit__(None, None, None)
    if fault_postgres.port and subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(fault_postgres.port)],
                                             capture_output=True).returncode != 0:
        fault_postgres.start()
    if docker_up():
        for pipeline in pipelines:  # never leave a failed case's containers to the next one
            for cid in job_containers(pipeline.prefix):
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
