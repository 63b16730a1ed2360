"""The edge with the optional ``kubernetes`` client (extra ``[k8s]``): loading its API
objects, and telling its errors (the cluster failed) from bugs."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from urllib3.exceptions import HTTPError

from greengrader.errors import ConfigError, ExecutorError
from greengrader.settings import Settings


def library() -> ModuleType:
    """The ``kubernetes`` package, or a one-line ConfigError saying how to install it."""
    try:
        import kubernetes
    except ImportError:
        raise ConfigError(
            "GREENGRADER_EXECUTOR=kubernetes needs the kubernetes client: pip install 'greengrader[k8s]'"
        ) from None
    return kubernetes


def load_apis(settings: Settings) -> tuple[Any, Any]:
    """BatchV1Api and CoreV1Api from in-cluster config or kubeconfig (``GREENGRADER_K8S_CONTEXT``)."""
    config, client = library().config, library().client
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config(context=settings.k8s_context)
        except (config.ConfigException, OSError) as exc:
            raise ExecutorError(f"no Kubernetes configuration (in-cluster or kubeconfig): {exc}") from exc
    api = client.ApiClient()
    return client.BatchV1Api(api), client.CoreV1Api(api)


def watch_factory() -> Callable[[], Any]:
    factory: Callable[[], Any] = library().watch.Watch
    return factory


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ``ApiException`` or 0 for a transport error (urllib3,
    socket); None for anything else, which is a bug and must propagate.

    Only called for errors of the clients :func:`load_apis` made (or a caller passed
    in), so the client library is installed.
    """
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, OSError):
        return 0
    if isinstance(exc, ApiException):
        return int(exc.status) if isinstance(exc.status, int) else 0
    return 0 if isinstance(exc, HTTPError) else None


def describe(exc: BaseException) -> str:
    return f"{getattr(exc, 'status', '?')} {getattr(exc, 'reason', '') or exc}".strip()
