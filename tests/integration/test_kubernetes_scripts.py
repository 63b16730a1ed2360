"""The Kubernetes Job's init and main commands, run in real Docker containers under the
pod's restrictions (uid 1000, read-only root, all capabilities dropped, no new privileges,
no network), on the real base image: the closest check of the pod we can make without a
cluster. The shared directory plays the emptyDir; the Secret is a read-only bind mount."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from greengrader.grading.executors.base import Job, Limits
from greengrader.grading.executors.kube_log import parse_log
from greengrader.grading.executors.kube_manifests import (
    INIT,
    MAIN,
    PAYLOAD_KEY,
    job_manifest,
    labels_for,
    payload_archive,
    secret_manifest,
)
from greengrader.settings import Settings

RUN_AUTOGRADER = b"""#!/bin/sh
set -e
cd /autograder
echo "uid=$(id -u)"
cp submission/hello.py source_copy.py
python3 source_copy.py
touch /should-fail 2>/dev/null && echo "root writable" || echo "root read-only"
printf '{"score": 10, "tests": [{"name": "hello", "score": 10, "max_score": 10}]}' > results/results.json
"""


def _run(docker_client: Any, image: str, command: list[str], mounts: dict[str, dict[str, str]]) -> tuple[int, str]:
    container = docker_client.containers.run(
        image, command, user="1000:1000", read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], network_mode="none", detach=True,
        volumes=mounts, tmpfs={"/tmp": "size=64m"}, mem_limit="256m", pids_limit=128,
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)


def test_pod_commands_grade_under_restricted_settings(docker_client: Any, base_image: str, tmp_path: Path) -> None:
    files = {
        "run_autograder": RUN_AUTOGRADER,
        "submission/hello.py": b"print('hello from the student')\n",
        "submission_metadata.json": b"{}",
    }
    job = Job(job_id="docker-check", image=base_image, files=files, limits=Limits(timeout_s=60))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    nonce = "n0nce1234"
    manifest = job_manifest(
        job, name="gg-check", namespace="grading", region="us-west", secret_name="gg-check",
        nonce=nonce, settings=settings, labels=labels_for("gg-check", job, "w"),
    )
    pod = manifest["spec"]["template"]["spec"]
    init = next(c for c in pod["initContainers"] if c["name"] == INIT)
    main = next(c for c in pod["containers"] if c["name"] == MAIN)

    work, payload = tmp_path / "work", tmp_path / "payload"
    work.mkdir()
    payload.mkdir()
    work.chmod(0o777)  # an emptyDir is world-writable
    secret = secret_manifest("gg-check", "grading", payload_archive(files), {})
    (payload / PAYLOAD_KEY).write_bytes(base64.b64decode(secret["data"][PAYLOAD_KEY]))
    (payload / PAYLOAD_KEY).chmod(0o444)

    code, init_log = _run(docker_client, base_image, init["command"], {
        str(work): {"bind": "/work", "mode": "rw"}, str(payload): {"bind": "/payload", "mode": "ro"},
    })
    assert code == 0, init_log
    code, log = _run(docker_client, base_image, main["command"], {str(work): {"bind": "/autograder", "mode": "rw"}})
    assert code == 0, log
    report = parse_log(log, nonce)
    assert report.exit_code == 0, log
    assert report.raw_results is not None
    assert json.loads(report.raw_results)["score"] == 10
    assert "uid=1000" in report.output and "hello from the student" in report.output
    assert "root read-only" in report.output
    assert report.runtime_s is not None and 0 < report.runtime_s < 30
