"""deploy/k8s: every manifest validates against the Kubernetes schema (kubernetes-validate)
and the set is complete: one worker per region, a single beat, auth and isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from greengrader.regions.registry import load_regions

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
VERSION = kubernetes_validate.latest_version()


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs() -> list[dict[str, Any]]:
    return [d for path in MANIFESTS for d in docs(path)]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in all_docs() if d["kind"] == kind}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path) -> None:
    for document in docs(path):
        kubernetes_validate.validate(document, VERSION, strict=True)


def test_validation_catches_a_broken_manifest() -> None:
    broken = docs(K8S / "beat.yaml")[0]
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in MANIFESTS} - {"secret.example.yaml"}


def test_one_worker_per_region_pinned_by_node_affinity() -> None:
    deployments = by_kind("Deployment")
    for region in load_regions(None).enabled():
        worker = deployments[f"greengrader-worker-{region.name}"]
        spec = worker["spec"]["template"]["spec"]
        command = spec["containers"][0]["command"]
        assert command[command.index("-Q") + 1] == region.queue_name
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expression = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert expression["values"] == [region.name]
        assert spec["serviceAccountName"] == "greengrader-worker"
    assert len([n for n in deployments if n.startswith("greengrader-worker-")]) == len(load_regions(None).enabled())


def test_single_beat() -> None:
    beat = by_kind("Deployment")["greengrader-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_every_pod_meets_the_restricted_profile() -> None:
    for name, deployment in by_kind("Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name
        # Only workers talk to the Kubernetes API.
        assert spec["automountServiceAccountToken"] is name.startswith("greengrader-worker-"), name


def test_flower_has_auth_and_services_stay_inside_the_cluster() -> None:
    flower = by_kind("Deployment")["greengrader-flower"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "greengrader-flower-auth"}} in flower["envFrom"]
    secrets = by_kind("Secret")
    assert "FLOWER_BASIC_AUTH" in secrets["greengrader-flower-auth"]["stringData"]
    assert secrets["greengrader-secrets"]["stringData"]["GREENGRADER_METRICS_PASSWORD"] == "CHANGE_ME"
    for service in by_kind("Service").values():
        assert service["spec"]["type"] == "ClusterIP"


def test_dashboard_signs_sessions_with_a_secret_and_sets_secure_cookies() -> None:
    pod = by_kind("Deployment")["greengrader-web"]["spec"]["template"]["spec"]
    web = pod["containers"][0]
    assert web["command"][:2] == ["greengrader", "web"]
    assert {"secretRef": {"name": "greengrader-web"}} in web["envFrom"]
    assert {"name": "GREENGRADER_WEB_COOKIE_SECURE", "value": "true"} in web["env"]
    assert web["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "GREENGRADER_WEB_SECRET_KEY" in by_kind("Secret")["greengrader-web"]["stringData"]
    policy = by_kind("NetworkPolicy")["greengrader-observability-ingress"]["spec"]
    assert "web" in policy["podSelector"]["matchExpressions"][0]["values"]
    assert {"port": 8080, "protocol": "TCP"} in policy["ingress"][0]["ports"]


def test_grading_pods_get_no_network() -> None:
    policy = by_kind("NetworkPolicy")["greengrader-grading-isolated"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"greengrader.io/role": "grader"}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [] and policy["egress"] == []


def test_grading_label_matches_the_executor() -> None:
    from greengrader.grading.executors import kube_manifests as executor

    assert (executor.LABEL_ROLE, executor.ROLE_GRADER) == ("greengrader.io/role", "grader")


def test_grading_pods_run_under_the_gvisor_runtime_class() -> None:
    runtime_class = by_kind("RuntimeClass")["gvisor"]
    assert runtime_class["handler"] == "runsc"
    config = by_kind("ConfigMap")["greengrader-config"]["data"]
    assert config["GREENGRADER_SANDBOX"] == "gvisor"
    assert config["GREENGRADER_K8S_RUNTIME_CLASS"] == runtime_class["metadata"]["name"]
