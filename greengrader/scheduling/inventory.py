"""What is really waiting in a region queue: the ``grade`` messages the broker holds.

A ``queued`` row is only lost when its message is in neither the queue nor the set a
worker has taken but not yet acknowledged. Waiting, however long, is not loss: the sweep
asks the broker which (submission, dispatch) pairs it holds and re-sends only the rows
it does not. A broker restart that dropped everything shows up as an empty inventory.

A message a worker took but has not acknowledged, while its row is still ``queued``,
is only in hand for the moment between delivery and the claim: a worker killed in that
moment leaves it in ``unacked`` until Redis's visibility timeout (hours). So an unacked
message counts as held only while it is younger than the sweep's grace; after that the
row is re-sent, and fencing makes the old message, should it ever come back, do nothing.

Backends: Redis (the queue's priority lists plus kombu's ``unacked`` hash) and kombu's
filesystem transport (the embedded default). For other transports the inventory is
unknown (None) and no waiting job is ever re-sent: RabbitMQ's durable queues and
persistent messages (Celery's defaults) survive a broker restart.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from greengrader.settings import Settings
from greengrader.tasks.names import GRADE_TASK

log = logging.getLogger(__name__)

Held = set[tuple[int, int | None]]  # (submission id, dispatch) of every grade message held

# kombu's Redis transport names (kombu.transport.redis.Channel defaults).
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_SEP = "\x06\x16"
REDIS_UNACKED = "unacked"
REDIS_UNACKED_INDEX = "unacked_index"  # delivery tag -> delivery time (epoch seconds)


class Inventory(Protocol):
    def held(self, queues: Iterable[str], taken_within_s: float = float("inf")) -> Held | None:
        """Grade messages in ``queues``: waiting, or taken but unacknowledged for less than
        ``taken_within_s``; None if unknown."""


def grade_message(envelope: dict[str, Any]) -> tuple[int, int | None] | None:
    """(submission id, dispatch) of a kombu envelope carrying ``greengrader.grade``."""
    headers = envelope.get("headers") or {}
    if headers.get("task") != GRADE_TASK:
        return None
    body = envelope.get("body", "")
    try:
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _embed = json.loads(body)
        dispatch = kwargs.get("dispatch")
        return int(args[0]), (int(dispatch) if dispatch is not None else None)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        log.warning("unreadable grade message in the broker: %s", exc)
        return None


class RedisInventory:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=10)

    def held(self, queues: Iterable[str], taken_within_s: float = float("inf")) -> Held | None:
        import redis

        names = set(queues)
        out: Held = set()
        try:
            with self._client.pipeline(transaction=True) as pipe:  # one snapshot of lists and unacked
                for queue in names:
                    for pri in REDIS_PRIORITY_STEPS:
                        pipe.lrange(f"{queue}{REDIS_SEP}{pri}" if pri else queue, 0, -1)
                pipe.hgetall(REDIS_UNACKED)
                pipe.zrange(REDIS_UNACKED_INDEX, 0, -1, withscores=True)
                pipe.time()
                *lists, unacked, delivered, (now_s, now_us) = pipe.execute()
        except redis.RedisError as exc:
            log.warning("cannot read the broker's queues (%s); not recovering queued jobs this pass", exc)
            return None
        for raw in (m for items in lists for m in items):
            self._add(out, json.loads(raw))
        since = dict(delivered)
        now = now_s + now_us / 1e6
        for tag, raw in unacked.items():
            message, _exchange, routing_key = json.loads(raw)
            if routing_key in names and now - since.get(tag, now) < taken_within_s:
                self._add(out, message)
        return out

    @staticmethod
    def _add(out: Held, envelope: dict[str, Any]) -> None:
        hit = grade_message(envelope)
        if hit is not None:
            out.add(hit)


class FilesystemInventory:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def held(self, queues: Iterable[str], taken_within_s: float = float("inf")) -> Held | None:
        # A taken message leaves the folder at once (nothing is kept unacknowledged).
        suffixes = tuple(f".{q}.msg" for q in queues)
        out: Held = set()
        try:
            names = [n for n in self.folder.iterdir() if n.name.endswith(suffixes)]
        except OSError as exc:
            log.warning("cannot list the broker folder %s (%s)", self.folder, exc)
            return None
        for path in names:
            try:
                hit = grade_message(json.loads(path.read_bytes()))
            except (OSError, ValueError):  # taken by a worker while we looked
                continue
            if hit is not None:
                out.add(hit)
        return out


class UnknownInventory:
    def held(self, queues: Iterable[str], taken_within_s: float = float("inf")) -> Held | None:
        return None


def inventory_for(settings: Settings) -> Inventory:
    """The inventory of the configured broker."""
    url = settings.effective_broker_url
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisInventory(url)
    if url.startswith("filesystem"):
        return FilesystemInventory(settings.broker_dir / "queue")
    return UnknownInventory()
