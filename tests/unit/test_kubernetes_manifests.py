"""Kubernetes manifests: valid for current Kubernetes versions (kubernetes-validate, strict),
accepted unchanged by the client's own models, and meeting the restricted Pod Security
Standard and the placement and limit rules the executor promises."""

from __future__ import annotations

import base64
import gzip
import io
import re
import tarfile
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient, V1Job, V1NetworkPolicy, V1Secret

from greengrader.grading.executors.base import Job, Limits
from greengrader.grading.executors.kube_manifests import (
    INIT,
    MAIN,
    PAYLOAD_KEY,
    dns_label,
    iter_manifests,
    job_manifest,
    labels_for,
    network_policy_manifest,
    payload_archive,
    run_name,
    secret_manifest,
)
from greengrader.settings import Settings

VERSIONS = ["1.30.0", "1.33.0", kubernetes_validate.latest_version()]
FILES = {"submission/hello.py": b"print('hi')\n", "submission_metadata.json": b'{"id": 1}'}


def _settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def _job_manifest(settings: Settings | None = None, **job_kw: Any) -> dict[str, Any]:
    settings = settings or _settings()
    job = Job(job_id="Submission 42/attempt#1", image="registry.local/gg/a:3f2c", files=FILES, **job_kw)
    name = run_name(job.job_id, salt="abc123")
    return job_manifest(
        job, name=name, namespace="grading", region="us-west", secret_name=name, nonce="n0nce",
        settings=settings, labels=labels_for(name, job, "Worker@Host.example"),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_strictly(version: str) -> None:
    secret = secret_manifest("gg-x", "grading", payload_archive(FILES), {"a": "b"})
    settings = _settings(k8s_runtime_class="gvisor")
    for manifest in [_job_manifest(settings), secret, *iter_manifests(settings)]:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_validator_catches_a_broken_manifest() -> None:
    broken = _job_manifest()
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_client_models_round_trip_the_manifests() -> None:
    api = ApiClient()
    job = _job_manifest()
    assert api.sanitize_for_serialization(V1Job.model_validate(job)) == job
    secret = secret_manifest("gg-x", "grading", payload_archive(FILES), {})
    assert api.sanitize_for_serialization(V1Secret.model_validate(secret)) == secret
    policy = network_policy_manifest("grading")
    assert api.sanitize_for_serialization(V1NetworkPolicy.model_validate(policy)) == policy


def test_restricted_pod_security() -> None:
    pod = _job_manifest()["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not (pod["hostNetwork"] or pod["hostPID"] or pod["hostIPC"])
    for container in pod["containers"] + pod["initContainers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True and sc["privileged"] is False
        assert container["resources"]["limits"] == container["resources"]["requests"]
    allowed = {"emptyDir", "secret", "configMap", "projected", "downwardAPI", "ephemeral", "csi", "persistentVolumeClaim"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed


def test_job_limits_placement_and_lifecycle() -> None:
    settings = _settings(k8s_ttl_s=120, k8s_start_grace_s=90, k8s_region_label="example.org/zone-group")
    manifest = _job_manifest(settings, limits=Limits(timeout_s=300, memory_mb=512, cpus=1.5, disk_mb=200))
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 300 + 90
    assert spec["ttlSecondsAfterFinished"] == 120
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "example.org/zone-group", "operator": "In", "values": ["us-west"]}]}]
    assert {"key": "greengrader.io/grading", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    main = next(c for c in pod["containers"] if c["name"] == MAIN)
    assert main["resources"]["limits"] == {"cpu": "1500m", "memory": "512Mi", "ephemeral-storage": "200Mi"}
    assert "300" in main["command"]  # the in-container timeout fires before the deadline
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["work"]["emptyDir"]["sizeLimit"] == "200Mi"
    assert volumes["payload"]["secret"]["secretName"] == manifest["metadata"]["name"]
    assert [c["name"] for c in pod["initContainers"]] == [INIT]
    assert {m["mountPath"] for m in main["volumeMounts"]} == {"/autograder", "/tmp"}


def test_timeout_capped_at_gradescope_maximum() -> None:
    manifest = _job_manifest(_settings(k8s_start_grace_s=0), limits=Limits(timeout_s=99_999))
    assert manifest["spec"]["activeDeadlineSeconds"] == 2400


def test_names_and_labels_are_valid_dns_labels() -> None:
    pattern = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    manifest = _job_manifest()
    assert pattern.match(manifest["metadata"]["name"]) and len(manifest["metadata"]["name"]) <= 63
    for value in manifest["metadata"]["labels"].values():
        assert pattern.match(value) and len(value) <= 63
    assert run_name("x" * 500) != run_name("x" * 500)  # a rerun never reuses a name
    assert dns_label("---") == "x"


def test_secret_carries_the_files_as_a_tar() -> None:
    secret = secret_manifest("gg-x", "grading", payload_archive(FILES), {})
    raw = gzip.decompress(base64.b64decode(secret["data"][PAYLOAD_KEY]))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = set(tar.getnames())
        member = tar.extractfile("submission/hello.py")
        assert member is not None and member.read() == FILES["submission/hello.py"]
    assert {"submission", "results", "submission_metadata.json"} <= names
    assert secret["immutable"] is True


def test_network_policy_denies_all_egress_for_graders() -> None:
    policy = network_policy_manifest("grading")
    assert policy["spec"]["egress"] == [] and "Egress" in policy["spec"]["policyTypes"]
    pod_labels = _job_manifest()["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()


def test_cli_prints_appliable_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from click.testing import CliRunner

    from greengrader.cli import cli
    from greengrader.settings import get_settings

    monkeypatch.setenv("GREENGRADER_K8S_NAMESPACE", "grading-test")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["k8s", "manifests"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0
    docs = list(yaml.safe_load_all(result.output))
    assert [d["kind"] for d in docs] == ["Namespace", "NetworkPolicy"]
    assert docs[1]["metadata"]["namespace"] == "grading-test"
    for doc in docs:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
