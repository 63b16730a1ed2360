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
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from greengrader.errors import ConfigError, ExecutorError, PlacementFailed
from greengrader.grading.executors.base import MAX_TIMEOUT_S, ExecutionResult, Job, Limits, Outcome
from greengrader.grading.executors.sandbox import kubernetes_choice
from greengrader.settings import Settings, get_settings

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
TIMEOUT_RC = 124  # coreutils `timeout` exit status when the limit fired
OVERRUN_S = 60.0  # beyond the Job's own deadline we stop waiting for the controller

# Copies the image's /autograder (not readable files fail loudly), then the submission. A
# run_autograder shipped in the job files (as the opt-in cluster test does) is made executable.
INIT_SCRIPT = r"""
set -eu
if [ -d /autograder ]; then cp -R /autograder/. /work/; fi
mkdir -p /work/results /work/submission /work/.greengrader
tar -xzf /payload/submission.tar.gz -C /work --no-same-owner --no-same-permissions
if [ -f /work/run_autograder ]; then chmod u+x /work/run_autograder; fi
"""

# $1 time limit (s), $2 nonce, $3 output cap, $4 results cap, $5 fsize (512-byte blocks),
# $6 open files. dash's ulimit counts -f in 512-byte blocks; a non-root user may lower limits.
WRAPPER = r"""
t="$1"; nonce="$2"; out_cap="$3"; res_cap="$4"
ulimit -f "$5" 2>/dev/null; ulimit -n "$6" 2>/dev/null
out=/autograder/.greengrader/output
r=/autograder/results/results.json
mkdir -p /autograder/results /autograder/.greengrader
cd /autograder
start=$(date +%s%N)
timeout -k 5 "$t" /autograder/run_autograder >"$out" 2>&1 </dev/null
rc=$?
end=$(date +%s%N)
ulimit -f unlimited 2>/dev/null
size=$(wc -c <"$out")
head -c "$out_cap" "$out"
if [ -L "$r" ] || [ ! -f "$r" ]; then state=missing
else rsize=$(wc -c <"$r"); if [ "$rsize" -gt "$res_cap" ]; then state="too_large:$rsize"; else state=ok; fi
fi
printf '\n@@GG-RESULTS %s rc=%s runtime_ns=%s output_bytes=%s results=%s@@\n' "$nonce" "$rc" "$((end - start))" "$size" "$state"
if [ "$state" = ok ]; then base64 "$r"; fi
printf '@@GG-END %s@@\n' "$nonce"
exit 0
"""

_MARKER = re.compile(
    r"@@GG-RESULTS (?P<nonce>\S+) rc=(?P<rc>-?\d+) runtime_ns=(?P<ns>-?\d+) "
    r"output_bytes=(?P<out>\d+) results=(?P<state>[a-z_]+(?::\d+)?)@@\n"
)


# --- names and manifests (pure) -------------------------------------------------------------

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
    from greengrader.grading.executors.docker import job_tar

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


def log_limit_bytes(limits: Limits) -> int:
    """Enough log bytes for the capped output, the marker and base64 results (76-col lines)."""
    encoded = (limits.results_bytes + 2) // 3 * 4
    return limits.stdout_bytes + 1024 + encoded + encoded // 76 + 1


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


# --- reading the log back (pure) ----------------------------------------------------------

@dataclass(frozen=True)
class LogReport:
    """What the wrapper printed: the autograder's output and the results block."""

    output: str
    exit_code: int | None
    runtime_s: float | None
    output_bytes: int
    raw_results: bytes | None
    problem: str | None


def parse_log(log: str, nonce: str) -> LogReport:
    """Split the main container's log into output and results (the last block wins)."""
    start = log.rfind(f"@@GG-RESULTS {nonce} ")
    match = _MARKER.match(log, start) if start >= 0 else None
    if match is None:
        return LogReport(log, None, None, len(log.encode()), None, "missing (the run was cut short)")
    output = log[:start].removesuffix("\n")
    end = log.find(f"@@GG-END {nonce}@@", match.end())
    body = log[match.end(): end if end >= 0 else len(log)]
    state = match.group("state")
    raw: bytes | None = None
    problem: str | None = None
    if state == "ok":
        if end < 0:
            problem = "cut short in the log"
        else:
            try:
                raw = base64.b64decode("".join(body.split()), validate=True)
            except ValueError:
                problem = "unreadable in the log"
    elif state.startswith("too_large"):
        problem = f"too large ({state.partition(':')[2]} bytes)"
    else:
        problem = "missing"
    ns = int(match.group("ns"))
    return LogReport(
        output=output,
        exit_code=int(match.group("rc")),
        runtime_s=ns / 1e9 if ns >= 0 else None,
        output_bytes=int(match.group("out")),
        raw_results=raw,
        problem=problem,
    )


# --- the executor ---------------------------------------------------------------------------

def _condition(job: Any) -> Any | None:
    """The job's terminal condition (``Complete``/``Failed`` with status True), if any."""
    status = getattr(job, "status", None)
    for cond in getattr(status, "conditions", None) or []:
        if cond.type in ("Complete", "Failed") and str(cond.status) == "True":
            return cond
    return None


def _status_of(statuses: Any, name: str) -> Any | None:
    for status in statuses or []:
        if status.name == name:
            return status
    return None


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
        try:
            from kubernetes import client, config, watch
        except ImportError:
            raise ConfigError(
                "GREENGRADER_EXECUTOR=kubernetes needs the kubernetes client: pip install 'greengrader[k8s]'"
            ) from None
        if self._batch is None or self._core is None:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                try:
                    config.load_kube_config(context=self.settings.k8s_context)  # type: ignore[no-untyped-call]
                except (config.ConfigException, OSError) as exc:
                    raise ExecutorError(f"no Kubernetes configuration (in-cluster or kubeconfig): {exc}") from exc
            api = client.ApiClient()
            self._batch = self._batch or client.BatchV1Api(api)
            self._core = self._core or client.CoreV1Api(api)
        if self._watch_factory is None:
            self._watch_factory = watch.Watch

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
        created = False
        try:
            self.core.create_namespaced_secret(
                self.namespace, secret_manifest(name, self.namespace, archive, labels)
            )
            self.batch.create_namespaced_job(self.namespace, manifest)
            created = True
            deadline = self.clock() + float(manifest["spec"]["activeDeadlineSeconds"]) + OVERRUN_S
            finished = self._wait(name, deadline)
            return self._collect(job, name, nonce, region, finished)
        except ExecutorError:
            raise
        except Exception as exc:
            if _api_status(exc) is None:
                raise
            raise ExecutorError(f"Kubernetes failed while grading job {job.job_id}: {_describe(exc)}") from exc
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
            if _condition(items[0]) is not None:
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
                if _condition(obj) is not None:
                    watcher.stop()
                    return obj
        except ExecutorError:
            raise
        except Exception as exc:
            if _api_status(exc) == 410:  # our resourceVersion is too old: re-list
                return None
            raise
        return None

    def _pod(self, name: str) -> Any | None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{LABEL_RUN}={name}").items or []
        pods.sort(key=lambda p: _timestamp(p.metadata.creation_timestamp))
        return pods[-1] if pods else None

    def _collect(self, job: Job, name: str, nonce: str, region: str, finished: Any) -> ExecutionResult:
        pod = self._pod(name)
        status = pod.status if pod is not None else None
        main = _status_of(getattr(status, "container_statuses", None), MAIN)
        init = _status_of(getattr(status, "init_container_statuses", None), INIT)
        terminated = main.state.terminated if main is not None and main.state else None
        init_done = getattr(getattr(init, "state", None), "terminated", None)
        delivery_failed = init_done is not None and init_done.exit_code != 0  # a setup error, below
        if terminated is None and not delivery_failed and _waiting(status, init):
            # Never ran: the region cannot take it (unschedulable, image pull, taint).
            raise PlacementFailed(f"the grading pod never started in {region} ({_waiting_reason(status, init)})")
        report: LogReport | None = None
        if terminated is not None and pod is not None:
            report = self._read_log(pod.metadata.name, job.limits, nonce)
        outcome, message, results = classify(job.limits, finished, status, init, terminated, report)
        runtime = report.runtime_s if report and report.runtime_s is not None else _runtime(terminated)
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
            if _api_status(exc) is None:
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
            if _condition(item) is None and _age_s(item) < max_age:
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


# --- classification (pure) -----------------------------------------------------------------

def classify(
    limits: Limits,
    finished: Any,
    pod_status: Any,
    init: Any,
    terminated: Any,
    report: LogReport | None,
) -> tuple[Outcome, str, dict[str, Any] | None]:
    """Outcome and TA-readable message from the Job, its pod and the log."""
    from greengrader.grading.executors.docker import decode_results

    cond = _condition(finished)
    reason = getattr(cond, "reason", None)
    if getattr(pod_status, "reason", None) == "Evicted":
        return "failed", (
            f"The autograder was evicted: {getattr(pod_status, 'message', '') or 'node pressure'} "
            f"(disk allowance {limits.disk_mb} MB)."
        ), None
    init_done = getattr(getattr(init, "state", None), "terminated", None)
    if init_done is not None and init_done.exit_code != 0:
        detail = (init_done.message or "").strip()[-500:]
        return "setup_error", f"The submission could not be delivered into the pod: {detail or init_done.reason}.", None
    never_started = terminated is None and _waiting(pod_status, init)
    if never_started or (terminated is None and reason != "DeadlineExceeded"):
        why = _waiting_reason(pod_status, init)
        if reason == "DeadlineExceeded":
            return "error", f"The grading pod never started before its deadline ({why}).", None
        return "error", f"The grading pod ended without running the autograder ({why}).", None
    if terminated is None:  # the deadline fired and the controller removed the pod
        return "timeout", f"The autograder did not finish within {limits.timeout_s:g} s and was stopped.", None
    if reason == "DeadlineExceeded" or (report and report.exit_code == TIMEOUT_RC):
        return "timeout", f"The autograder did not finish within {limits.timeout_s:g} s and was stopped.", None
    oom = terminated.reason == "OOMKilled"
    raw = report.raw_results if report else None
    problem = report.problem if report else "missing"
    results, why = decode_results(raw, problem)
    exit_code = report.exit_code if report else terminated.exit_code
    if results is None:
        if oom:
            return "oom", f"The autograder ran out of memory (limit {limits.memory_mb} MB) and was killed.", None
        return "failed", f"{why} (autograder exit code {exit_code}).", None
    notes = []
    if oom:
        notes.append(f"a process ran out of memory (limit {limits.memory_mb} MB) and was killed")
    if exit_code:
        notes.append(f"run_autograder exited with code {exit_code}")
    return "graded", "Graded." + (" Note: " + "; ".join(notes) + "." if notes else ""), results


def _waiting(pod_status: Any, init: Any) -> bool:
    """True if the pod exists but its autograder container never ran."""
    if pod_status is None:
        return False
    if getattr(pod_status, "phase", None) == "Pending":
        return True
    for cond in getattr(pod_status, "conditions", None) or []:
        if cond.type == "PodScheduled" and str(cond.status) != "True":
            return True
    main = _status_of(getattr(pod_status, "container_statuses", None), MAIN)
    state = getattr(main, "state", None)
    return getattr(state, "running", None) is None and getattr(state, "terminated", None) is None


def _waiting_reason(pod_status: Any, init: Any) -> str:
    if pod_status is None:
        return "no pod was created"
    for cond in getattr(pod_status, "conditions", None) or []:
        if cond.type == "PodScheduled" and str(cond.status) != "True":
            return f"not scheduled: {cond.reason}: {cond.message}"
    for status in [init, *(getattr(pod_status, "container_statuses", None) or [])]:
        waiting = getattr(getattr(status, "state", None), "waiting", None)
        if waiting is not None:
            return f"{status.name} waiting: {waiting.reason}: {waiting.message or ''}".rstrip(": ")
    return f"pod phase {getattr(pod_status, 'phase', '?')}"


def _runtime(terminated: Any) -> float | None:
    start = getattr(terminated, "started_at", None)
    end = getattr(terminated, "finished_at", None)
    if isinstance(start, datetime) and isinstance(end, datetime) and end >= start:
        return (end - start).total_seconds()
    return None


def _timestamp(value: Any) -> float:
    if not isinstance(value, datetime):
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _age_s(item: Any) -> float:
    created = _timestamp(getattr(item.metadata, "creation_timestamp", None))
    return time.time() - created if created else 0.0


def _api_status(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ``ApiException`` or 0 for a transport error (urllib3,
    socket); None for anything else, which is a bug and must propagate."""
    if isinstance(exc, OSError):
        return 0
    try:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError
    except ImportError:
        return None
    if isinstance(exc, ApiException):
        return int(exc.status) if isinstance(exc.status, int) else 0
    return 0 if isinstance(exc, HTTPError) else None


def _describe(exc: BaseException) -> str:
    return f"{getattr(exc, 'status', '?')} {getattr(exc, 'reason', '') or exc}".strip()


def iter_manifests(settings: Settings) -> Iterator[dict[str, Any]]:
    """The cluster-side objects an operator applies once: namespace and NetworkPolicy."""
    yield namespace_manifest(settings.k8s_namespace)
    yield network_policy_manifest(settings.k8s_namespace)
