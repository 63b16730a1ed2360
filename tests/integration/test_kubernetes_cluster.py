"""Opt-in end-to-end run of the Kubernetes executor on a real cluster.

Runs only when ``KUBECONFIG`` is set (no cluster can be had on the build machines). The
cluster must be able to pull ``GREENGRADER_K8S_TEST_IMAGE`` (default ``python:3.12-slim``:
any Debian-like image with sh and coreutils) and have at least one node labelled with
``GREENGRADER_K8S_REGION_LABEL``; the namespace ``GREENGRADER_K8S_NAMESPACE`` is created if
missing, with the restricted Pod Security profile enforced, and the deny-egress
NetworkPolicy applied.
"""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"), reason="needs a Kubernetes cluster: set KUBECONFIG to run"
)

RUN_AUTOGRADER = b"""#!/bin/sh
cd /autograder
echo "grading as uid $(id -u)"
if python3 -c 'import urllib.request; urllib.request.urlopen("http://example.com", timeout=3)' 2>/dev/null; then
  net=open
else
  net=closed
fi
printf '{"score": 7, "output": "network %s", "tests": []}' "$net" > results/results.json
"""


def test_grade_on_a_real_cluster() -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from greengrader.grading.executors.base import Job, Limits
    from greengrader.grading.executors.kube_manifests import iter_manifests
    from greengrader.grading.executors.kubernetes import KubernetesExecutor
    from greengrader.settings import Settings

    settings = Settings()
    config.load_kube_config(context=settings.k8s_context)
    core = client.CoreV1Api()
    regions = {
        (node.metadata.labels or {}).get(settings.k8s_region_label)
        for node in core.list_node().items
    } - {None}
    assert regions, f"label at least one node with {settings.k8s_region_label}=<region>"
    region = sorted(regions)[0]

    namespace, policy = list(iter_manifests(settings))
    try:
        core.create_namespace(namespace)
    except ApiException as exc:
        assert exc.status == 409, exc
    networking = client.NetworkingV1Api()
    try:
        networking.create_namespaced_network_policy(settings.k8s_namespace, policy)
    except ApiException as exc:
        assert exc.status == 409, exc

    executor = KubernetesExecutor(settings=settings)
    image = os.environ.get("GREENGRADER_K8S_TEST_IMAGE", "python:3.12-slim")
    job = Job(
        job_id="cluster-smoke",
        image=image,
        files={"run_autograder": RUN_AUTOGRADER, "submission/hello.py": b"print(1)\n",
               "submission_metadata.json": b"{}"},
        limits=Limits(timeout_s=120, memory_mb=256),
        region=region,
    )
    result = executor.run(job)
    assert result.outcome == "graded", result.message
    assert result.results is not None and result.results["score"] == 7
    assert "grading as uid 1000" in result.stdout
    # With a CNI that enforces NetworkPolicy the grader has no network.
    print(json.dumps(result.details), result.results["output"])

    left = client.BatchV1Api().list_namespaced_job(
        settings.k8s_namespace, label_selector=f"greengrader.io/run={result.details['k8s_job']}"
    ).items
    assert all(item.metadata.deletion_timestamp for item in left)
