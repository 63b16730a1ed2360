"""deploy/systemd: units that systemd accepts without warnings, with restart policies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SERVICES = sorted(UNITS.glob("*.service"))


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd allows repeated keys, so not configparser)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_systemd_analyze_accepts_every_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not found (apt-get install -y systemd)", pytrace=False)
    # ExecStart must name an existing executable: point /opt/greengrader at this venv.
    venv_bin = str(Path(sys.executable).parent)
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/opt/greengrader/bin", venv_bin)
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "greengrader-worker@us-west.service").write_text(
        (tmp_path / "greengrader-worker@.service").read_text()
    )
    files = sorted(str(p) for p in tmp_path.iterdir() if p.name != "greengrader-worker@.service")
    proc = subprocess.run(
        [analyze, "verify", "--man=no", *files], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    ours = [line for line in proc.stderr.splitlines() if str(tmp_path) in line or "greengrader" in line]
    assert proc.returncode == 0, proc.stderr
    assert ours == [], "\n".join(ours)


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_service_restarts_and_is_confined(unit: Path) -> None:
    service = parse(unit)["Service"]
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["greengrader"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert "/etc/greengrader/greengrader.env" in service["EnvironmentFile"]
    assert "StartLimitBurst" in parse(unit)["Unit"]


def test_components_are_all_there() -> None:
    names = {p.name for p in SERVICES}
    assert {
        "greengrader-bridge.service", "greengrader-cas.service", "greengrader-beat.service",
        "greengrader-scheduler.service", "greengrader-worker@.service", "greengrader-flower.service",
        "greengrader-metrics.service",
    } <= names


def test_worker_template_consumes_its_region_queue() -> None:
    service = parse(UNITS / "greengrader-worker@.service")["Service"]
    command = service["ExecStart"][0].split()
    assert command[command.index("-Q") + 1] == "region-%i"
    assert service["SupplementaryGroups"] == ["docker"]


def test_flower_listens_on_loopback_only() -> None:
    command = parse(UNITS / "greengrader-flower.service")["Service"]["ExecStart"][0]
    assert "--address=127.0.0.1" in command
