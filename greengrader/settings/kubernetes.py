"""The Kubernetes executor: where grading Jobs run and how their pods are shaped; see docs/kubernetes.md."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class KubernetesSettings(BaseModel):
    k8s_namespace: str = "greengrader"
    k8s_context: str | None = None
    k8s_region_label: str = "topology.kubernetes.io/region"
    k8s_tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [
            {"key": "greengrader.io/grading", "operator": "Exists", "effect": "NoSchedule"}
        ]
    )
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    k8s_ttl_s: int = Field(default=300, ge=0)
    k8s_start_grace_s: int = Field(default=120, ge=0)
    k8s_watch_timeout_s: int = Field(default=60, ge=1)
    k8s_runtime_class: str | None = None
    k8s_run_as_user: int = Field(default=1000, ge=1)
    k8s_max_secret_bytes: int = Field(default=900 * 1024, ge=1024, le=1024 * 1024)
