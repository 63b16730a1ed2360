"""Beat liveness: the beat process announces itself on the broker; ``health`` counts beats.

Celery beat has no heartbeat of its own, and a dead beat is silent (nothing is released or
recovered, but nothing fails either), while two beats double every periodic task. So each
beat keeps a key ``greengrader:beat:<host>:<pid>`` alive on the Redis broker (expiring after
three sweep intervals) and marks ``greengrader:beat:seen`` once. ``health`` then reports no
live beat after one was seen, and more than one live beat, as WARNING. Other brokers are not
checked.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from greengrader.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "greengrader:beat:"
SEEN_KEY = PREFIX + "seen"


def is_redis(url: str) -> bool:
    return url.startswith(("redis:", "rediss:"))


def ttl_s(settings: Settings) -> int:
    return max(10, round(3 * settings.sweep_interval_s))


def _client(url: str, timeout_s: float) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


class BeatHeart(threading.Thread):
    """Refreshes this beat's key every sweep interval (survives broker outages)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="greengrader-beat-heartbeat", daemon=True)
        self.url = settings.effective_broker_url
        self.interval = max(1.0, min(settings.sweep_interval_s, ttl_s(settings) / 3))
        self.ttl = ttl_s(settings)
        self.key = f"{PREFIX}{socket.gethostname()}:{os.getpid()}"
        self.value = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
        self.stopped = threading.Event()

    def beat(self) -> None:
        try:
            client = _client(self.url, 5.0)
            try:
                client.set(self.key, self.value, ex=self.ttl)
                client.set(SEEN_KEY, "1")
            finally:
                client.close()
        except Exception:  # the broker may be restarting: try again next interval
            log.warning("could not record the beat heartbeat", exc_info=True)

    def run(self) -> None:
        while True:
            self.beat()
            if self.stopped.wait(self.interval):
                return


def start_beat_heartbeat(settings: Settings) -> BeatHeart | None:
    if not is_redis(settings.effective_broker_url):
        return None
    heart = BeatHeart(settings)
    heart.start()
    return heart


def live_beats(broker_url: str, timeout_s: float) -> tuple[list[dict[str, Any]], bool]:
    """(live beats, whether a beat was ever seen). Raises redis errors when unreachable."""
    client = _client(broker_url, timeout_s)
    try:
        beats = []
        for key in client.scan_iter(match=PREFIX + "*:*", count=100):
            raw = client.get(key)
            if raw is not None:
                beats.append(json.loads(raw))
        return beats, bool(client.exists(SEEN_KEY))
    finally:
        client.close()
