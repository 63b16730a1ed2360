"""GREENGRADER_SANDBOX against what the Docker daemon (or the cluster) offers."""

from __future__ import annotations

import pytest

from greengrader.errors import ExecutorError
from greengrader.grading.executors.base import ExecutionResult, Limits
from greengrader.grading.executors.sandbox import GVISOR_PIDS_BASE, choose, kubernetes_choice
from greengrader.settings import load_settings


def test_auto_uses_gvisor_when_the_daemon_has_runsc() -> None:
    choice = choose(load_settings(), ["runc", "runsc"])
    assert (choice.sandbox, choice.runtime, choice.warning) == ("gvisor", "runsc", None)


def test_auto_falls_back_to_runc_with_a_warning() -> None:
    choice = choose(load_settings(), ["io.containerd.runc.v2", "runc"])
    assert (choice.sandbox, choice.runtime) == ("runc", None)
    assert choice.warning is not None and "host kernel" in choice.warning and "'runsc'" in choice.warning


def test_required_gvisor_never_falls_back() -> None:
    with pytest.raises(ExecutorError, match="GREENGRADER_SANDBOX=gvisor"):
        choose(load_settings(sandbox="gvisor"), ["runc"])
    assert choose(load_settings(sandbox="gvisor", gvisor_runtime="gvisor-kvm"), ["gvisor-kvm"]).runtime == "gvisor-kvm"


def test_runc_is_used_when_asked_even_with_gvisor_available() -> None:
    assert choose(load_settings(sandbox="runc"), ["runsc"]).sandbox == "runc"


def test_gvisor_pids_limit_leaves_room_for_the_sandbox_threads() -> None:
    gvisor, runc = choose(load_settings(), ["runsc"]), choose(load_settings(), [])
    assert runc.pids_limit(256) == 256
    assert gvisor.pids_limit(256) > GVISOR_PIDS_BASE + 256 * 8  # ~8 host threads per process measured


def test_a_dead_gvisor_sandbox_is_explained_but_a_disk_stop_is_not() -> None:
    gvisor = choose(load_settings(), ["runsc"])
    died = ExecutionResult("failed", "missing", exit_code=2, details={"reported": False, "stopped": None})
    gvisor.annotate(died, Limits(pids=64))
    assert died.sandbox == "gvisor" and "gVisor sandbox stopped" in died.message and "limit 64" in died.message
    disk = ExecutionResult("failed", "disk", details={"reported": False, "stopped": "disk"})
    gvisor.annotate(disk, Limits())
    assert disk.message == "disk"


def test_kubernetes_runtime_class() -> None:
    assert kubernetes_choice(load_settings(k8s_runtime_class="gvisor")).runtime == "gvisor"
    assert kubernetes_choice(load_settings(sandbox="gvisor")).runtime == "gvisor"
    auto = kubernetes_choice(load_settings())
    assert auto.sandbox == "runc" and auto.warning is not None
    assert kubernetes_choice(load_settings(sandbox="runc", k8s_runtime_class="gvisor")).runtime is None


def test_unknown_sandbox_is_a_config_error() -> None:
    from greengrader.errors import ConfigError

    with pytest.raises(ConfigError, match="GREENGRADER_SANDBOX"):
        load_settings(sandbox="crun")
