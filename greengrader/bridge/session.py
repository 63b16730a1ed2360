"""The bridge's MQTT session: the paho client, its persistent session, the inbox its network
thread fills, and the acks and receipts sent back.

paho's network thread only queues messages (:class:`Inbound`); the bridge's store thread
takes them from :attr:`MqttSession.inbox` and acks them through :meth:`MqttSession.ack`
once stored. Packet ids belong to one connection, so each message carries the connection
(generation) it came on and is never acked on a later one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from greengrader.bridge.topics import receipt_topic, subscriptions

if TYPE_CHECKING:
    from greengrader.bridge.records import IngestOutcome
    from greengrader.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Inbound:
    """One message taken off the network thread, with what is needed to ack it later."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received: float = field(default_factory=time.monotonic)


class MqttSession:
    """A QoS 1 subscriber on a persistent MQTT 5 session, acking manually.

    ``stopping`` is the bridge's stop flag: a disconnect after it is set is expected.
    """

    def __init__(self, settings: Settings, stopping: threading.Event) -> None:
        self.settings = settings
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self._stopping = stopping
        self._connected = threading.Event()
        self._generation = 0
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.mqtt_client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        secret = s.mqtt_secret()
        if s.mqtt_username:
            client.username_pw_set(s.mqtt_username, secret)
        if s.mqtt_tls:
            client.tls_set(ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Acks and receipts are queued from the worker thread; never drop them for a full queue.
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
        # The broker keeps at most this many unacked messages in flight to us.
        props.ReceiveMaximum = self.settings.mqtt_receive_maximum
        return props

    # --- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        try:
            if reason.is_failure:
                log.error("MQTT connection refused: %s", reason)
                return
            self._generation += 1
            topics = subscriptions(self.settings)
            client.subscribe([(t, 1) for t in topics])
            self._connected.set()
            log.info(
                "connected to MQTT %s:%s (session present: %s), subscribed to %s",
                self.settings.mqtt_host, self.settings.mqtt_port,
                getattr(flags, "session_present", "?"), ", ".join(topics),
            )
        except Exception:
            log.exception("error in on_connect")

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this from inside its `except OSError`, without the error: fetch it,
        # so a wrong host or port is visible at once, not after minutes of silence.
        exc = sys.exc_info()[1]
        log.warning("MQTT connection to %s:%s failed (%s); retrying with backoff", self.settings.mqtt_host,
                    self.settings.mqtt_port, exc or "no reason given")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("MQTT disconnected (%s); reconnecting with backoff", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.inbox.put(Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._generation))
        except Exception:  # never let a callback exception stop paho's loop
            log.exception("could not queue an MQTT message")

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (retrying with backoff) and start the network thread."""
        s = self.settings
        self._client.connect_async(
            s.mqtt_host, s.mqtt_port, keepalive=s.mqtt_keepalive_s, clean_start=False,
            properties=self._connect_properties(),
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Disconnect (acks already queued are sent first) and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def force_redelivery(self) -> None:
        """Drop what is in hand and cut the connection: paho reconnects with the persistent
        session and the broker resends every unacked message (duplicates are deduplicated
        on store)."""
        while True:
            try:
                self.inbox.get_nowait()
            except queue.Empty:
                break
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # a TLS socket is one too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # --- sending (store thread) --------------------------------------------------------------

    def ack(self, msg: Inbound) -> None:
        if msg.generation != self._generation:
            # Packet ids belong to the connection they came on; the broker redelivers this
            # message on the new connection and the copy is stored as a duplicate.
            return
        try:
            self._client.ack(msg.mid, msg.qos)
        except Exception:
            log.exception("could not ack message %s", msg.mid)

    def receipt(self, outcome: IngestOutcome) -> None:
        try:
            self._client.publish(
                receipt_topic(self.settings, outcome), json.dumps(outcome.receipt()), qos=1
            )
        except Exception:
            log.exception("could not publish a receipt")
