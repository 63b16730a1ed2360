"""Grading executors, resolved by name (``docker``, ``kubernetes``) or dotted path
(``package.module:Class`` or ``package.module.Class``)."""

from __future__ import annotations

import importlib
from typing import Any

from greengrader.errors import ConfigError
from greengrader.grading.executors.base import ExecutionResult, Executor, Job, Limits, Outcome
from greengrader.settings import Settings

BUILTIN = {
    "docker": "greengrader.grading.executors.docker:DockerExecutor",
    "kubernetes": "greengrader.grading.executors.kubernetes:KubernetesExecutor",
}

__all__ = ["BUILTIN", "ExecutionResult", "Executor", "Job", "Limits", "Outcome", "get_executor"]


def get_executor(name: str, settings: Settings, **kwargs: Any) -> Executor:
    """Instantiate the executor ``name`` with ``settings`` (no connection is opened here)."""
    target = BUILTIN.get(name, name)
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"GREENGRADER_EXECUTOR: cannot load executor {name!r} ({exc})") from None
    executor: Executor = cls(settings=settings, **kwargs)
    return executor
