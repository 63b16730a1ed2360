"""deploy/docker-compose.yml: valid for Compose, complete, and closed by default."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from greengrader.regions.registry import load_regions

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
INSTALL = "apt-get install -y docker-compose  (or the docker-compose-plugin package)"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail(f"Docker Compose not found. Install it with: {INSTALL}", pytrace=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/ with each *.env.example as its *.env, as an operator prepares it."""
    root = tmp_path_factory.mktemp("compose")
    shutil.copytree(DEPLOY, root / "deploy")
    shutil.copy(REPO / "Dockerfile", root / "Dockerfile")
    for example in (root / "deploy" / "env").glob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return root


@pytest.fixture(scope="module")
def resolved(project: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [*compose_command(), "-f", "deploy/docker-compose.yml", "config"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(yaml.safe_load(proc.stdout))


def test_matches_the_compose_spec_schema() -> None:
    if not COMPOSE_SPEC.exists():
        pytest.fail(f"compose-spec schema not found at {COMPOSE_SPEC}. Install: {INSTALL}", pytrace=False)
    import jsonschema

    schema = json.loads(COMPOSE_SPEC.read_text())
    document = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    jsonschema.validate(document, schema)


def test_a_missing_env_file_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    proc = subprocess.run(
        [*compose_command(), "-f", "deploy/docker-compose.yml", "config", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert ".env" in proc.stderr


def test_every_part_is_a_service(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    expected = {"postgres", "redis", "mosquitto", "migrate", "bridge", "cas", "scheduler", "beat", "flower", "metrics", "web"}
    assert expected <= set(services)
    assert services["bridge"]["command"] == ["greengrader", "bridge"]
    assert services["scheduler"]["command"][3:6] == ["worker", "-Q", "scheduling"]


def test_one_worker_per_enabled_region(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for region in load_regions(None).enabled():
        worker = services[f"worker-{region.name}"]
        command = worker["command"]
        assert command[command.index("-Q") + 1] == region.queue_name
        assert "/var/run/docker.sock:/var/run/docker.sock" in str(worker["volumes"]) or any(
            v.get("target") == "/var/run/docker.sock" for v in worker["volumes"] if isinstance(v, dict)
        )
    workers = [name for name in services if name.startswith("worker-")]
    assert len(workers) == len(load_regions(None).enabled())


def _published(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port["published"])))
        else:
            parts = str(port).split(":")
            out.append((parts[0] if len(parts) == 3 else "", parts[-2]))
    return out


def test_only_mqtt_tls_is_public(resolved: dict[str, Any]) -> None:
    public = {
        (name, published)
        for name, service in resolved["services"].items()
        for host_ip, published in _published(service)
        if host_ip not in ("127.0.0.1", "::1")
    }
    assert public == {("mosquitto", "8883")}
    assert ("127.0.0.1", "5555") in _published(resolved["services"]["flower"])
    assert resolved["networks"]["backend"]["internal"] is True


def test_dashboard_is_on_loopback_with_a_signing_key_and_secure_cookies(resolved: dict[str, Any]) -> None:
    web = resolved["services"]["web"]
    assert _published(web) == [("127.0.0.1", "8080")]
    assert web["command"][:2] == ["greengrader", "web"]
    assert web["environment"]["GREENGRADER_WEB_SECRET_KEY"]
    assert web["environment"]["GREENGRADER_WEB_COOKIE_SECURE"] == "true"


def test_flower_and_metrics_require_credentials(resolved: dict[str, Any]) -> None:
    flower_env = resolved["services"]["flower"]["environment"]
    assert flower_env["FLOWER_BASIC_AUTH"].count(":") == 1
    metrics_env = resolved["services"]["metrics"]["environment"]
    assert metrics_env["GREENGRADER_METRICS_USERNAME"] and metrics_env["GREENGRADER_METRICS_PASSWORD"]


def test_mosquitto_mounts_the_auth_files(resolved: dict[str, Any]) -> None:
    volumes = str(resolved["services"]["mosquitto"]["volumes"])
    for target in ("/mosquitto/config/passwd", "/mosquitto/config/acl", "/mosquitto/config/conf.d",
                   "/mosquitto/config/certs/server.key"):
        assert target in volumes
    assert "ca.key" not in volumes  # the CA's private key never enters a container


def test_no_real_env_file_is_tracked() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [p for p in tracked if p.endswith(".env")]
    assert not [p for p in tracked if p.startswith("deploy/mosquitto/credentials/") or p.endswith(".key")]


def test_mosquitto_conf_includes_auth_and_caps_payloads() -> None:
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert "include_dir /mosquitto/config/conf.d" in conf
    assert "max_packet_size" in conf
    assert "allow_anonymous true" not in conf
