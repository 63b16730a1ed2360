"""Run one autograder job as a Kubernetes Job in the job's region (extra ``[k8s]``).

One grade = one Secret (the submission as a gzipped tar) + one Job:

* **Placement**: a *required* node affinity on ``GREENGRADER_K8S_REGION_LABEL`` = region,
  so the pod lands only on that region's nodes (the original system used a *preferred*
  affinity, so a failing scheduler let pods land anywhere), plus configurable tolerations
  for nodes dedicated to grading; any other taint keeps the pod off a node.
* **Limits**: ``activeDeadlineSeconds`` (time limit + start grace), ``backoffLimit: 0``
  (Celery owns retries), ``restartPolicy: Never``, ``ttlSecondsAfterFinished``; CPU,
  memory and ephemeral-storage requests = limits (Guaranteed QoS); an in-container
  ``timeout`` fires before the deadline, which also counts image pulls.
* **Restricted pod security**: non-root, no privilege escalation, all capabilities
  dropped, seccomp ``RuntimeDefault``, read-only root, no service-account token, no
  service links; ``/autograder`` and ``/tmp`` are size-limited emptyDirs.
* **Delivery**: an initContainer (the assignment image itself, so nothing extra is
  pulled) copies the image's ``/autograder`` into the emptyDir and unpacks the Secret.
* **Results**: the main container runs a small wrapper that captures the autograder's
  output to a file and then prints to its log: at most ``stdout_bytes`` of that output, a
  marker line carrying a per-run nonce, the exit code and runtime, then ``results.json``
  base64-encoded, then an end marker. Logs survive the container (unlike files) and are
  read with ``limit_bytes`` before ``ttlSecondsAfterFinished`` removes the pod; the last
  marker wins, so nothing the student prints earlier can pose as results. The termination
  message was not used: it is capped at 4 KiB, too small for real results.json files.
* **Completion**: a watch on the one Job (``field_selector`` + ``timeout_seconds``); on
  410 Gone or a quiet timeout it re-lists and checks ``status.conditions``.
* **Clean-up**: the Job is deleted with ``propagation_policy="Background"`` (a plain delete
  orphans its pods) and the Secret deleted, always; :meth:`janitor` removes leftovers.

The objects are built in ``kube_manifests``, the log is framed and read in ``kube_log``,
the outcome is decided in ``kube_outcome``, and ``kube_client`` is the edge with the
optional client library.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from greengrader.errors import ExecutorError, PlacementFailed
from greengrader.grading.executors.base import MAX_TIMEOUT_S, ExecutionResult, Job, Limits
from greengrader.grading.executors.kube_client import api_status, describe, load_apis, watch_factory
from greengrader.grading.executors.kube_log import LogReport, log_limit_bytes, parse_log
from greengrader.grading.executors.kube_manifests import (
    INIT,
    LABEL_MANAGED,
    LABEL_ROLE,
    LABEL_RUN,
    MAIN,
    MANAGED_BY,
    ROLE_GRADER,
    job_manifest,
    labels_for,
    payload_archive,
    run_name,
    secret_manifest,
)
from greengrader.grading.executors.kube_outcome import (
    age_s,
    container_runtime,
    job_condition,
    never_ran,
    pod_verdict,
    status_of,
    timestamp,
    waiting_reason,
)
from greengrader.grading.executors.sandbox import kubernetes_choice
from greengrader.settings import Settings, get_settings

OVERRUN_S = 60.0  # beyond the Job's own deadline we stop waiting for the controller



class KubernetesExecutor:
    """Grades in Kubernetes Jobs; clients are created lazily from in-cluster config or
    kubeconfig (``GREENGRADER_K8S_CONTEXT``), or passed in."""

    name = "kubernetes"

    def __init__(
        self,
        settings: Settings | None = None,
        batch_api: Any = None,
        core_api: Any = None,
        watch_factory: Callable[[], Any] | None = None,
        region: str | None = None,
        worker: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or get_settings()
        self._batch = batch_api
        self._core = core_api
        self._watch_factory = watch_factory
        self.region = region
        self.worker = worker or socket.gethostname()
        self.clock = clock
        self.namespace = self.settings.k8s_namespace

    # --- clients -------------------------------------------------------------------------

    def _load(self) -> None:
        if self._batch is None or self._core is None:
            batch, core = load_apis(self.settings)
            self._batch = self._batch or batch
            self._core = self._core or core
        if self._watch_factory is None:
            self._watch_factory = watch_factory()

    @property
    def batch(self) -> Any:
        if self._batch is None:
            self._load()
        return self._batch

    @property
    def core(self) -> Any:
        if self._core is None:
            self._load()
        return self._core

    def _watch(self) -> Any:
        if self._watch_factory is None:
            self._load()
        assert self._watch_factory is not None
        return self._watch_factory()

    # --- one job -------------------------------------------------------------------------

    def run(self, job: Job) -> ExecutionResult:
        region = job.region or self.region or self.settings.default_region
        name = run_name(job.job_id)
        nonce = secrets.token_hex(8)
        labels = labels_for(name, job, self.worker)
        archive = payload_archive(job.files)
        if len(archive) * 4 // 3 > self.settings.k8s_max_secret_bytes:
            return ExecutionResult(
                outcome="error",
                message=(
                    f"The submission is {len(archive)} bytes compressed, more than a Kubernetes "
                    f"Secret may carry ({self.settings.k8s_max_secret_bytes} bytes encoded); "
                    "deliver it through object storage (see docs/kubernetes.md)."
                ),
                details={"k8s_job": name},
            )
        manifest = job_manifest(
            job, name=name, namespace=self.namespace, region=region, secret_name=name,
            nonce=nonce, settings=self.settings, labels=labels,
        )
        # Clients first, outside the try: a missing client library or configuration is
        # reported as such, and everything the try sees comes from a loaded client.
        core, batch = self.core, self.batch
        created = False
        try:
            core.create_namespaced_secret(self.namespace, secret_manifest(name, self.namespace, archive, labels))
            batch.create_namespaced_job(self.namespace, manifest)
            created = True
            deadline = self.clock() + float(manifest["spec"]["activeDeadlineSeconds"]) + OVERRUN_S
            finished = self._wait(name, deadline)
            return self._collect(job, name, nonce, region, finished)
        except ExecutorError:
            raise
        except Exception as exc:
            if api_status(exc) is None:
                raise
            raise ExecutorError(f"Kubernetes failed while grading job {job.job_id}: {describe(exc)}") from exc
        finally:
            self._cleanup(name, job_created=created)

    def _wait(self, name: str, deadline: float) -> Any:
        """Block until the Job has a terminal condition; returns the Job."""
        selector = f"metadata.name={name}"
        while True:
            listing = self.batch.list_namespaced_job(self.namespace, field_selector=selector)
            items = listing.items or []
            if not items:
                raise ExecutorError(f"Kubernetes Job {name} disappeared before it finished")
            if job_condition(items[0]) is not None:
                return items[0]
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise ExecutorError(f"Kubernetes Job {name} outlived its deadline; the controller is not reporting")
            finished = self._watch_once(name, selector, listing.metadata.resource_version, remaining)
            if finished is not None:
                return finished

    def _watch_once(self, name: str, selector: str, resource_version: str | None, remaining: float) -> Any:
        """One bounded watch from ``resource_version``; None means re-list (quiet or 410 Gone)."""
        watcher = self._watch()
        timeout = max(1, int(min(remaining, self.settings.k8s_watch_timeout_s)))
        try:
            for event in watcher.stream(
                self.batch.list_namespaced_job, self.namespace, field_selector=selector,
                resource_version=resource_version, timeout_seconds=timeout,
            ):
                obj = event["object"]
                if event["type"] == "DELETED":
                    raise ExecutorError(f"Kubernetes Job {name} was deleted before it finished")
                if job_condition(obj) is not None:
                    watcher.stop()
                    return obj
        except ExecutorError:
            raise
        except Exception as exc:
            if api_status(exc) == 410:  # our resourceVersion is too old: re-list
                return None
            raise
        return None

    def _pod(self, name: str) -> Any | None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{LABEL_RUN}={name}").items or []
        pods.sort(key=lambda p: timestamp(p.metadata.creation_timestamp))
        return pods[-1] if pods else None

    def _collect(self, job: Job, name: str, nonce: str, region: str, finished: Any) -> ExecutionResult:
        pod = self._pod(name)
        status = pod.status if pod is not None else None
        main = status_of(getattr(status, "container_statuses", None), MAIN)
        init = status_of(getattr(status, "init_container_statuses", None), INIT)
        terminated = main.state.terminated if main is not None and main.state else None
        init_done = getattr(getattr(init, "state", None), "terminated", None)
        delivery_failed = init_done is not None and init_done.exit_code != 0  # a setup error, below
        if terminated is None and not delivery_failed and never_ran(status, init):
            # Never ran: the region cannot take it (unschedulable, image pull, taint).
            raise PlacementFailed(f"the grading pod never started in {region} ({waiting_reason(status, init)})")
        report: LogReport | None = None
        if terminated is not None and pod is not None:
            report = self._read_log(pod.metadata.name, job.limits, nonce)
        outcome, message, results = pod_verdict(job.limits, finished, status, init, terminated, report)
        runtime = report.runtime_s if report and report.runtime_s is not None else container_runtime(terminated)
        truncated = bool(report and report.output_bytes > job.limits.stdout_bytes)
        if truncated:
            message += f" Output was cut at {job.limits.stdout_bytes} bytes."
        sandbox = kubernetes_choice(self.settings)
        if sandbox.warning:
            message += f" Warning: {sandbox.warning}."
        return ExecutionResult(
            outcome=outcome,
            message=message,
            sandbox=sandbox.sandbox,
            results=results,
            stdout=report.output if report else "",
            output_truncated=truncated,
            exit_code=report.exit_code if report else getattr(terminated, "exit_code", None),
            runtime_s=runtime or 0.0,
            started_at=getattr(terminated, "started_at", None),
            finished_at=getattr(terminated, "finished_at", None),
            details={
                "k8s_job": name,
                "namespace": self.namespace,
                "region": region,
                "pod": pod.metadata.name if pod is not None else None,
                "node": pod.spec.node_name if pod is not None and pod.spec else None,
                "oom_killed": getattr(terminated, "reason", None) == "OOMKilled",
            },
        )

    def _read_log(self, pod_name: str, limits: Limits, nonce: str) -> LogReport | None:
        # Only called once the container has terminated: a log read during
        # ContainerCreating answers 400.
        try:
            log = self.core.read_namespaced_pod_log(
                pod_name, self.namespace, container=MAIN, limit_bytes=log_limit_bytes(limits)
            )
        except Exception as exc:
            if api_status(exc) is None:
                raise
            return None  # the pod went away (deadline, eviction): classified without a log
        return parse_log(log or "", nonce)

    def _cleanup(self, name: str, *, job_created: bool) -> None:
        if job_created:
            with contextlib.suppress(Exception):  # the janitor retries whatever fails here
                self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
        with contextlib.suppress(Exception):
            self.core.delete_namespaced_secret(name, self.namespace)

    # --- leftovers -----------------------------------------------------------------------

    def janitor(self) -> int:
        """Delete finished or over-age grading Jobs (with their pods) and orphaned Secrets."""
        selector = f"{LABEL_MANAGED}={MANAGED_BY},{LABEL_ROLE}={ROLE_GRADER}"
        removed = 0
        live: set[str] = set()
        max_age = MAX_TIMEOUT_S + self.settings.k8s_start_grace_s + OVERRUN_S
        for item in self.batch.list_namespaced_job(self.namespace, label_selector=selector).items or []:
            name = item.metadata.name
            if job_condition(item) is None and age_s(item) < max_age:
                live.add(name)
                continue
            with contextlib.suppress(Exception):
                self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
                removed += 1
        for secret in self.core.list_namespaced_secret(self.namespace, label_selector=selector).items or []:
            if secret.metadata.name in live:
                continue
            with contextlib.suppress(Exception):
                self.core.delete_namespaced_secret(secret.metadata.name, self.namespace)
                removed += 1
        return removed
