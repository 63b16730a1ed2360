"""Kubernetes objects for grading, as pure data validated offline against the schema.

One grade = one Secret (the submission as a gzipped tar) + one Job. The Job pins its pod
to the region with a *required* node affinity, runs under the restricted Pod Security
Standard and Guaranteed QoS, and delivers the submission with an initContainer; the
namespace and a deny-all NetworkPolicy are applied once by an operator (see the
executor's module for why each choice was made).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from greengrader.grading.executors.archive import job_tar
from greengrader.grading.executors.base import MAX_TIMEOUT_S, Job
from greengrader.grading.executors.kube_log import WRAPPER
from greengrader.grading.executors.sandbox import kubernetes_choice
from greengrader.settings import Settings

MANAGED_BY = "greengrader"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_ROLE = "greengrader.io/role"
LABEL_RUN = "greengrader.io/run"
LABEL_JOB = "greengrader.io/job"
LABEL_WORKER = "greengrader.io/worker"
ROLE_GRADER = "grader"
PAYLOAD_KEY = "submission.tar.gz"
MAIN = "autograder"
INIT = "deliver"

# Copies the image's /autograder (not readable files fail loudly), then the submission. A
# run_autograder shipped in the job files (as the opt-in cluster test does) is made executable.
INIT_SCRIPT = r"""
set -eu
if [ -d /autograder ]; then cp -R /autograder/. /work/; fi
mkdir -p /work/results /work/submission /work/.greengrader
tar -xzf /payload/submission.tar.gz -C /work --no-same-owner --no-same-permissions
if [ -f /work/run_autograder ]; then chmod u+x /work/run_autograder; fi
"""


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label / label value: lower-case alphanumerics and dashes."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "x"


def run_name(job_id: str, salt: str | None = None) -> str:
    """A unique Job name for one run of ``job_id`` (a rerun never collides with a Job that
    is still waiting for its TTL)."""
    salt = salt or secrets.token_hex(3)
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:6]
    return f"gg-{dns_label(job_id, 40)}-{digest}-{salt}"


def payload_archive(files: Mapping[str, bytes]) -> bytes:
    """The job's files as a gzipped tar rooted at ``/autograder`` (mtime fixed: stable)."""
    return gzip.compress(job_tar(files), mtime=0)


def labels_for(name: str, job: Job, worker: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: MANAGED_BY,
        LABEL_ROLE: ROLE_GRADER,
        LABEL_RUN: name,
        LABEL_JOB: dns_label(job.job_id),
        LABEL_WORKER: dns_label(worker),
    }


def secret_manifest(name: str, namespace: str, archive: bytes, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "type": "Opaque",
        "immutable": True,
        "data": {PAYLOAD_KEY: base64.b64encode(archive).decode("ascii")},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(cpu: str, memory_mb: int, disk_mb: int) -> dict[str, Any]:
    amounts = {"cpu": cpu, "memory": f"{memory_mb}Mi", "ephemeral-storage": f"{disk_mb}Mi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _cpu_quantity(cpus: float) -> str:
    return f"{max(1, round(cpus * 1000))}m"



def job_manifest(
    job: Job,
    *,
    name: str,
    namespace: str,
    region: str,
    secret_name: str,
    nonce: str,
    settings: Settings,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The Job for one run: pure data, validated offline against the Kubernetes schema."""
    limits = job.limits
    timeout = int(min(limits.timeout_s, MAX_TIMEOUT_S))
    uid = settings.k8s_run_as_user
    args = [
        "greengrader-run", str(timeout), nonce, str(limits.stdout_bytes), str(limits.results_bytes),
        str(limits.fsize_mb * 2048), str(limits.nofile),
    ]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [
                            {"key": settings.k8s_region_label, "operator": "In", "values": [region]}
                        ]}
                    ]
                }
            }
        },
        "tolerations": [dict(t) for t in settings.k8s_tolerations],
        "initContainers": [{
            "name": INIT,
            "image": job.image,
            "imagePullPolicy": settings.k8s_image_pull_policy,
            "command": ["/bin/sh", "-c", INIT_SCRIPT],
            "volumeMounts": [
                {"name": "work", "mountPath": "/work"},
                {"name": "payload", "mountPath": "/payload", "readOnly": True},
            ],
            "resources": _resources("250m", 128, 64),
            "securityContext": _container_security(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }],
        "containers": [{
            "name": MAIN,
            "image": job.image,
            "imagePullPolicy": settings.k8s_image_pull_policy,
            "command": ["/bin/sh", "-c", WRAPPER, *args],
            "workingDir": "/autograder",
            "env": [{"name": "HOME", "value": "/tmp"}, {"name": "TMPDIR", "value": "/tmp"}],  # noqa: S108
            "volumeMounts": [
                {"name": "work", "mountPath": "/autograder"},
                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (the pod's own emptyDir)
            ],
            "resources": _resources(_cpu_quantity(limits.cpus), limits.memory_mb, limits.disk_mb),
            "securityContext": _container_security(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }],
        "volumes": [
            {"name": "work", "emptyDir": {"sizeLimit": f"{limits.disk_mb}Mi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": f"{limits.disk_mb}Mi"}},
            {"name": "payload", "secret": {"secretName": secret_name, "defaultMode": 0o440}},
        ],
    }
    runtime_class = kubernetes_choice(settings).runtime
    if runtime_class:
        pod_spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout + settings.k8s_start_grace_s,
            "ttlSecondsAfterFinished": settings.k8s_ttl_s,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def network_policy_manifest(namespace: str, name: str = "greengrader-deny-egress") -> dict[str, Any]:
    """Deny all egress (and ingress) for grading pods: student code gets no network, not
    even DNS. Needs a CNI that enforces NetworkPolicy (Calico, Cilium...)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL_MANAGED: MANAGED_BY}},
        "spec": {
            "podSelector": {"matchLabels": {LABEL_ROLE: ROLE_GRADER}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }


def namespace_manifest(namespace: str) -> dict[str, Any]:
    """The namespace with Pod Security Admission enforcing the ``restricted`` profile."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                LABEL_MANAGED: MANAGED_BY,
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def iter_manifests(settings: Settings) -> Iterator[dict[str, Any]]:
    """The cluster-side objects an operator applies once: namespace and NetworkPolicy."""
    yield namespace_manifest(settings.k8s_namespace)
    yield network_policy_manifest(settings.k8s_namespace)
