"""A real Mosquitto with the shipped auth/TLS config, password file and ACL from setup.sh."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.private_services import PrivateMosquitto

WAIT = 3.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    mosq = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto"))
    mosq.setup()
    mosq.start()
    yield mosq
    mosq.stop()


class Session:
    """One connected paho client that records what it receives."""

    def __init__(self, broker: PrivateMosquitto, user: str | None, password: str | None, tls: bool) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:10]}")
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set(ca_certs=str(broker.ca_file))
        self.connected = threading.Event()
        self.reason: Any = None
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, msg.payload))
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        port = broker.tls_port if tls else broker.port
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.reason = reason
        self.connected.set()

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(WAIT)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def received(self, timeout: float = WAIT) -> list[tuple[str, bytes]]:
        out = []
        try:
            out.append(self.messages.get(timeout=timeout))
            while True:
                out.append(self.messages.get(timeout=0.3))
        except queue.Empty:
            return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def connect(broker: PrivateMosquitto) -> Iterator[Any]:
    sessions: list[Session] = []

    def _connect(user: str | None, password: str | None = None, tls: bool = True) -> Session:
        if user is not None and password is None:
            password = broker.password(user)
        session = Session(broker, user, password, tls)
        sessions.append(session)
        return session

    yield _connect
    for session in sessions:
        session.close()


@pytest.mark.parametrize("tls", [True, False])
def test_anonymous_clients_are_refused(connect: Any, tls: bool) -> None:
    assert not connect(None, tls=tls).accepted


def test_wrong_password_and_unknown_account_are_refused(connect: Any) -> None:
    assert not connect("cs101", "not-the-password").accepted
    assert not connect("nobody", "whatever").accepted
    assert connect("cs101").accepted


def test_course_publishes_only_to_its_own_topic(connect: Any, broker: PrivateMosquitto) -> None:
    bridge = connect("bridge")
    assert bridge.accepted
    bridge.subscribe("$share/bridge/submissions/#")
    bridge.subscribe("$share/bridge/workers/register")
    course = connect("cs101")
    course.publish("submissions/cs102", b"forged")  # another course's topic: dropped
    course.publish("submissions", b"bare")  # the unscoped topic: dropped
    course.publish("receipts/cs101/1", b"fake receipt")  # not the bridge: dropped
    course.publish("submissions/cs101/deeper", b"nested")  # the bridge reads submissions/+ only
    course.publish("workers/register", b"{}")  # only the worker account registers hosts
    course.publish("submissions/cs101", b"mine")
    connect("worker").publish("workers/register", b'{"hostname": "h1"}')
    assert sorted(bridge.received()) == [
        ("submissions/cs101", b"mine"),
        ("workers/register", b'{"hostname": "h1"}'),
    ]


def test_bridge_cannot_publish_submissions(connect: Any) -> None:
    watcher = connect("bridge")
    watcher.subscribe("submissions/#")
    connect("bridge").publish("submissions/cs101", b"injected by bridge")
    connect("cs102").publish("submissions/cs102", b"real")
    assert watcher.received() == [("submissions/cs102", b"real")]


def test_course_reads_only_its_own_receipts(connect: Any) -> None:
    own = connect("cs101")
    own.subscribe("receipts/cs101/#")
    other = connect("cs102")
    other.subscribe("receipts/#")
    other.subscribe("receipts/cs101/#")
    connect("bridge").publish("receipts/cs101/4242", b'{"stored": true}')
    assert own.received() == [("receipts/cs101/4242", b'{"stored": true}')]
    assert other.received(timeout=1.0) == []


def test_monitor_account_can_connect_but_not_read_submissions(connect: Any) -> None:
    monitor = connect("monitor")
    assert monitor.accepted
    monitor.subscribe("submissions/#")
    connect("cs101").publish("submissions/cs101", b"private")
    assert monitor.received(timeout=1.0) == []


def test_rerunning_setup_keeps_passwords(broker: PrivateMosquitto, tmp_path: Path) -> None:
    import subprocess

    from tests.integration.private_services import MOSQUITTO_DIR

    before = broker.password("cs101")
    subprocess.run(
        [str(MOSQUITTO_DIR / "setup.sh"), "-o", str(broker.workdir), "--no-certs", "cs101", "cs102", "cs103"],
        check=True, capture_output=True,
    )
    assert broker.password("cs101") == before
    acl = (broker.workdir / "acl").read_text()
    assert "user cs103\ntopic write submissions/cs103\ntopic read receipts/cs103/#" in acl
    assert "pattern" not in acl
    bad = subprocess.run([str(MOSQUITTO_DIR / "setup.sh"), "-o", str(tmp_path), "bridge"], capture_output=True)
    assert bad.returncode == 2


def test_hook_credentials_file_is_a_mosquitto_options_file(connect: Any, broker: PrivateMosquitto,
                                                          tmp_path: Path) -> None:
    """The hook copies hook/<course> to $XDG_CONFIG_HOME/mosquitto_pub: it must parse as options."""
    import subprocess

    options = (broker.workdir / "hook" / "cs101").read_text()
    password = broker.password("cs101")
    assert options.splitlines()[:2] == ["-u cs101", f"-P {password}"]
    assert (broker.workdir / "hook" / "cs101").stat().st_mode & 0o077 == 0
    config = tmp_path / "config"
    config.mkdir()
    # Inside Gradescope the CA sits beside the file; here it is the broker's (an earlier
    # --no-certs re-run of setup.sh in this module leaves the line out).
    lines = [line for line in options.splitlines() if not line.startswith("--cafile ")]
    (config / "mosquitto_pub").write_text("\n".join([*lines, f"--cafile {broker.ca_file}"]) + "\n")
    bridge = connect("bridge")
    bridge.subscribe("$share/bridge/submissions/#")
    out = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.tls_port), "-q", "1", "-t", "submissions/cs101",
         "-m", "via-hook-credentials"],
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(config)}, capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert password not in out.stderr + out.stdout
    assert bridge.received() == [("submissions/cs101", b"via-hook-credentials")]
