"""A small fake of the kubernetes client boundary: BatchV1Api, CoreV1Api and Watch, with
only the methods the executor calls, returning the client's own model objects.

There is no cluster on these machines and no fake client upstream (kubernetes-client/python
#524). The fake plays kubelet honestly where it can: it runs the Job's real init script and
real wrapper command (from the manifest, with the container paths mapped to temporary
directories) with /bin/sh, so the log the executor parses is the one the wrapper prints.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes.client import (
    V1Container,
    V1ContainerState,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1Job,
    V1JobCondition,
    V1JobList,
    V1JobStatus,
    V1ListMeta,
    V1ObjectMeta,
    V1Pod,
    V1PodCondition,
    V1PodList,
    V1PodSpec,
    V1PodStatus,
    V1Secret,
    V1SecretList,
)
from kubernetes.client.exceptions import ApiException

from greengrader.grading.executors.kube_log import WRAPPER
from greengrader.grading.executors.kube_manifests import INIT, INIT_SCRIPT, MAIN, PAYLOAD_KEY

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Behaviour:
    """How the fake cluster treats the next Job."""

    kind: str = "run"  # run | oom | deadline | deadline_pod_gone | unschedulable
    gone_watches: int = 0  # watch streams that fail with 410 Gone before any event
    quiet_watches: int = 0  # watch streams that time out with no event
    watch_error: int | None = None  # an HTTP status every watch fails with
    corrupt_payload: bool = False  # the Secret's bytes reach the pod damaged


@dataclass
class FakeCluster:
    image_dir: Path
    scratch: Path
    behaviour: Behaviour = field(default_factory=Behaviour)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_status: dict[str, V1JobStatus] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, V1Pod] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    created: dict[str, datetime] = field(default_factory=dict)
    rv: int = 100

    def bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    def job_obj(self, name: str) -> V1Job:
        manifest = self.jobs[name]
        meta = manifest["metadata"]
        return V1Job(
            metadata=V1ObjectMeta(
                name=name, namespace=meta["namespace"], labels=meta["labels"],
                resource_version=str(self.rv), creation_timestamp=self.created[name],
            ),
            status=self.job_status[name],
        )

    # --- playing the job controller and kubelet --------------------------------------------

    def advance(self, name: str) -> None:
        """Run the job to its end according to the behaviour."""
        if name not in self.jobs or self.job_status[name].conditions:
            return
        kind = self.behaviour.kind
        if kind == "run":
            self._run(name)
        elif kind == "oom":
            self._pod(name, _terminated(MAIN, 137, "OOMKilled"), log="allocating...\n")
            self._finish(name, "Failed", "BackoffLimitExceeded")
        elif kind == "deadline":
            self._pod(name, _terminated(MAIN, 137, "Error"), log="still working...\n")
            self._finish(name, "Failed", "DeadlineExceeded")
        elif kind == "deadline_pod_gone":
            self._finish(name, "Failed", "DeadlineExceeded")
        elif kind == "unschedulable":
            pod = self._pod(name, _waiting(MAIN, "PodInitializing"), phase="Pending")
            pod.status.conditions = [V1PodCondition(
                type="PodScheduled", status="False", reason="Unschedulable",
                message="0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            )]
            self._finish(name, "Failed", "DeadlineExceeded")
        else:
            raise AssertionError(kind)

    def _run(self, name: str) -> None:
        manifest = self.jobs[name]
        pod_spec = manifest["spec"]["template"]["spec"]
        base = self.scratch / name
        work, payload, tmp = base / "work", base / "payload", base / "tmp"
        for path in (work, payload, tmp):
            path.mkdir(parents=True)
        secret = self.secrets[pod_spec["volumes"][2]["secret"]["secretName"]]
        data = base64.b64decode(secret["data"][PAYLOAD_KEY])
        (payload / PAYLOAD_KEY).write_bytes(data[: len(data) // 2] if self.behaviour.corrupt_payload else data)
        init_cmd = pod_spec["initContainers"][0]["command"]
        assert init_cmd[2] == INIT_SCRIPT
        script = INIT_SCRIPT.replace("/payload", str(payload)).replace("/work", str(work))
        script = script.replace("/autograder", str(self.image_dir))
        init = subprocess.run([*init_cmd[:2], script], capture_output=True, text=True, timeout=30)
        if init.returncode != 0:
            self._pod(name, _waiting(MAIN, "PodInitializing"),
                      init=_terminated(INIT, init.returncode, "Error", init.stderr), phase="Failed")
            self._finish(name, "Failed", "BackoffLimitExceeded")
            return
        main_cmd = pod_spec["containers"][0]["command"]
        assert main_cmd[2] == WRAPPER
        wrapper = WRAPPER.replace("/autograder", str(work))
        run = subprocess.run([*main_cmd[:2], wrapper, *main_cmd[3:]], capture_output=True, timeout=60)
        state = _terminated(MAIN, run.returncode, "Completed" if run.returncode == 0 else "Error")
        self._pod(name, state, log=run.stdout.decode("utf-8", "replace"), phase="Succeeded")
        self._finish(name, "Complete" if run.returncode == 0 else "Failed", None)

    def _pod(self, name: str, main: V1ContainerStatus, *, init: V1ContainerStatus | None = None,
             log: str = "", phase: str = "Failed") -> V1Pod:
        labels = self.jobs[name]["spec"]["template"]["metadata"]["labels"]
        pod_name = f"{name}-x7k2p"
        pod = V1Pod(
            metadata=V1ObjectMeta(name=pod_name, labels=labels, creation_timestamp=T0),
            spec=V1PodSpec(containers=[V1Container(name=MAIN)], node_name="node-a-1"),
            status=V1PodStatus(
                phase=phase,
                container_statuses=[main],
                init_container_statuses=[init or _terminated(INIT, 0, "Completed")],
            ),
        )
        self.pods[pod_name] = pod
        self.logs[pod_name] = log
        return pod

    def _finish(self, name: str, kind: str, reason: str | None) -> None:
        self.job_status[name] = V1JobStatus(
            conditions=[V1JobCondition(type=kind, status="True", reason=reason)]
        )
        self.bump()


def _terminated(name: str, code: int, reason: str, message: str | None = None) -> V1ContainerStatus:
    return V1ContainerStatus(
        name=name, image="img", image_id="sha256:0", ready=False, restart_count=0,
        state=V1ContainerState(terminated=V1ContainerStateTerminated(
            exit_code=code, reason=reason, message=message,
            started_at=T0, finished_at=T0 + timedelta(seconds=2),
        )),
    )


def _waiting(name: str, reason: str) -> V1ContainerStatus:
    return V1ContainerStatus(
        name=name, image="img", image_id="", ready=False, restart_count=0,
        state=V1ContainerState(waiting=V1ContainerStateWaiting(reason=reason)),
    )


def _match(labels: dict[str, str] | None, selector: str | None) -> bool:
    if not selector:
        return True
    wanted = dict(part.split("=", 1) for part in selector.split(","))
    return wanted.items() <= (labels or {}).items()


def _not_found(kind: str, name: str) -> ApiException:
    return ApiException(status=404, reason=f"{kind} {name} not found")


class FakeBatchV1Api:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> V1Job:
        V1Job.model_validate(body)  # what the real client's validate_call does with a dict
        name = body["metadata"]["name"]
        affinity = body["spec"]["template"]["spec"].get("affinity", {})
        terms = affinity.get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", {})
        region = [e["values"] for t in terms.get("nodeSelectorTerms", []) for e in t["matchExpressions"]]
        self.cluster.calls.append(("create_job", {"namespace": namespace, "name": name, "region": region}))
        if name in self.cluster.jobs:
            raise ApiException(status=409, reason="AlreadyExists")
        self.cluster.jobs[name] = body
        self.cluster.created[name] = datetime.now(UTC)
        self.cluster.job_status[name] = V1JobStatus(active=1)
        self.cluster.bump()
        return self.cluster.job_obj(name)

    def list_namespaced_job(self, namespace: str, field_selector: str | None = None,
                            label_selector: str | None = None, **kwargs: Any) -> V1JobList:
        self.cluster.calls.append(("list_jobs", {"field_selector": field_selector, "label_selector": label_selector}))
        names = list(self.cluster.jobs)
        if field_selector:
            key, _, value = field_selector.partition("=")
            assert key == "metadata.name"
            names = [n for n in names if n == value]
        items = [self.cluster.job_obj(n) for n in names
                 if _match(self.cluster.jobs[n]["metadata"]["labels"], label_selector)]
        return V1JobList(items=items, metadata=V1ListMeta(resource_version=str(self.cluster.rv)))

    def delete_namespaced_job(self, name: str, namespace: str, propagation_policy: str | None = None) -> None:
        self.cluster.calls.append(("delete_job", {"name": name, "propagation_policy": propagation_policy}))
        if name not in self.cluster.jobs:
            raise _not_found("job", name)
        del self.cluster.jobs[name]
        if propagation_policy in ("Background", "Foreground"):  # otherwise the pods are orphaned
            for pod_name, pod in list(self.cluster.pods.items()):
                if pod.metadata.labels.get("greengrader.io/run") == name:
                    del self.cluster.pods[pod_name]


class FakeCoreV1Api:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def create_namespaced_secret(self, namespace: str, body: dict[str, Any]) -> V1Secret:
        V1Secret.model_validate(body)
        self.cluster.calls.append(("create_secret", {"name": body["metadata"]["name"]}))
        self.cluster.secrets[body["metadata"]["name"]] = body
        return V1Secret.model_validate(body)

    def delete_namespaced_secret(self, name: str, namespace: str) -> None:
        self.cluster.calls.append(("delete_secret", {"name": name}))
        if self.cluster.secrets.pop(name, None) is None:
            raise _not_found("secret", name)

    def list_namespaced_secret(self, namespace: str, label_selector: str | None = None) -> V1SecretList:
        items = [V1Secret.model_validate(s) for s in self.cluster.secrets.values()
                 if _match(s["metadata"].get("labels"), label_selector)]
        return V1SecretList(items=items)

    def list_namespaced_pod(self, namespace: str, label_selector: str | None = None) -> V1PodList:
        items = [p for p in self.cluster.pods.values() if _match(p.metadata.labels, label_selector)]
        return V1PodList(items=items)

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str | None = None,
                                limit_bytes: int | None = None) -> str:
        self.cluster.calls.append(("read_log", {"name": name, "container": container, "limit_bytes": limit_bytes}))
        pod = self.cluster.pods.get(name)
        if pod is None:
            raise _not_found("pod", name)
        if container is None:
            raise ApiException(status=400, reason="a container name must be specified")
        status = next(s for s in pod.status.container_statuses if s.name == container)
        if status.state.terminated is None and status.state.running is None:
            raise ApiException(status=400, reason=f"container {container} is waiting to start")
        data = self.cluster.logs[name].encode()
        if limit_bytes is not None:
            data = data[:limit_bytes]
        return data.decode("utf-8", "replace")


class FakeWatch:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def stream(self, func: Any, namespace: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        cluster, behaviour = self.cluster, self.cluster.behaviour
        cluster.calls.append(("watch", dict(kwargs)))
        assert func.__name__ == "list_namespaced_job"
        assert "timeout_seconds" in kwargs and kwargs["field_selector"].startswith("metadata.name=")
        name = kwargs["field_selector"].partition("=")[2]
        if behaviour.watch_error is not None:
            raise ApiException(status=behaviour.watch_error, reason="watch failed")
        if behaviour.gone_watches:
            behaviour.gone_watches -= 1
            cluster.advance(name)  # the job finishes while we are not watching
            raise ApiException(status=410, reason="Gone: too old resource version")
        if behaviour.quiet_watches:
            behaviour.quiet_watches -= 1
            return
        yield {"type": "MODIFIED", "object": cluster.job_obj(name)}
        if self.stopped:
            return
        cluster.advance(name)
        if name in cluster.jobs:
            yield {"type": "MODIFIED", "object": cluster.job_obj(name)}


def install_image(image_dir: Path, run_autograder: str) -> None:
    """An 'assignment image' /autograder: run_autograder plus a source file."""
    if image_dir.exists():
        shutil.rmtree(image_dir)
    (image_dir / "source").mkdir(parents=True)
    (image_dir / "source" / "tests.py").write_text("# tests\n")
    script = image_dir / "run_autograder"
    script.write_text("#!/bin/sh\n" + run_autograder)
    script.chmod(0o755)
