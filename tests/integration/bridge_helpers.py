"""Helpers for the bridge integration tests: settings, publishing, waiting, a TCP proxy."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from greengrader.db import Database
from greengrader.models import Quarantine, Submission
from tests.conftest import TEST_PSEUDONYM_KEY


def bridge_env(prefix: str, database_url: str) -> dict[str, str]:
    """Environment for a bridge isolated on its own topics and client id."""
    return {
        "GREENGRADER_DATABASE_URL": database_url,
        "GREENGRADER_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        "GREENGRADER_MQTT_TOPIC": f"{prefix}/submissions",
        "GREENGRADER_MQTT_RECEIPT_TOPIC": f"{prefix}/receipts",
        "GREENGRADER_MQTT_WORKERS_TOPIC": f"{prefix}/workers/register",
        "GREENGRADER_MQTT_CLIENT_ID": f"{prefix}-bridge",
        "GREENGRADER_MQTT_SESSION_EXPIRY_S": "600",
    }


def bridge_argv() -> list[str]:
    return [sys.executable, "-m", "greengrader", "bridge"]


def publish(topic: str, payloads: list[bytes], host: str = "127.0.0.1", port: int = 1883) -> None:
    """Publish with QoS 1 and wait until the broker has acknowledged every message."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(topic, data, qos=1) for data in payloads]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


class Receipts:
    """Collects receipts published under a topic filter."""

    def __init__(self, topic_filter: str, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, bytes(msg.payload)))
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(topic_filter, qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._ready.wait(10), "receipt subscription not acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(
    condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition", log: str | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    tail = "" if log is None else "\n" + Path(log).read_text()[-3000:]
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def count(db: Database, model: Any = Submission) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def quarantine_reasons(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(Quarantine.reason)))


class TcpProxy:
    """A TCP proxy the test can stop and start, to make a real server unreachable."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone does not.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
