"""Worker registry hooks: register at ``worker_ready``, heartbeat while alive.

The registration and the heartbeats run in one daemon thread rather than in Celery's
``heartbeat_sent`` signal: with ``--pool solo`` a long grade blocks the consumer loop (and
with it event heartbeats) for minutes, and collecting CPU facts takes about a second that
the consumer should not wait for. The thread re-registers whenever its row has gone (a
pruned registry, a database restored from backup) and survives database outages.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from greengrader.context import Context, current_context
from greengrader.errors import UnknownRegion
from greengrader.ops.workers import WorkerFacts, collect_facts, heartbeat, register_worker

log = logging.getLogger(__name__)

_heart: WorkerHeart | None = None


def regions_for_queues(ctx: Context, queues: Iterable[str]) -> list[str]:
    """The regions whose queues are among ``queues``, in order (empty for a scheduling worker)."""
    regions: list[str] = []
    for queue in queues:
        try:
            name = ctx.regions.by_queue(queue).name
        except UnknownRegion:
            continue
        if name not in regions:
            regions.append(name)
    return regions


def pool_size(consumer: Any) -> int | None:
    """Grading slots of this worker: its pool's limit (``-c``; 1 for ``--pool solo``)."""
    size = getattr(getattr(consumer, "pool", None), "limit", None)
    if not isinstance(size, int):
        size = getattr(getattr(consumer, "controller", None), "concurrency", None)
    if not isinstance(size, int):
        size = getattr(getattr(getattr(consumer, "app", None), "conf", None), "worker_concurrency", None)
    return size if isinstance(size, int) and size > 0 else None


def consumed_queues(consumer: Any) -> list[str]:
    """Queue names the worker consumes (``-Q``), from the consumer or the app's selection."""
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = getattr(task_consumer, "queues", None)
    if queues:
        return [q.name for q in queues]
    return list(consumer.app.amqp.queues.consume_from)


class WorkerHeart(threading.Thread):
    """Registers this worker once, then refreshes its heartbeat every ``interval`` seconds."""

    def __init__(self, ctx: Context, hostname: str, regions: list[str], interval: float,
                 concurrency: int | None = None) -> None:
        super().__init__(name="greengrader-heartbeat", daemon=True)
        self.ctx = ctx
        self.hostname = hostname
        self.regions = regions
        self.concurrency = concurrency
        self.interval = interval
        self.started_at = ctx.now()
        self.stopped = threading.Event()
        self.registered = threading.Event()

    def register(self, facts: WorkerFacts | None = None) -> None:
        register_worker(self.ctx, facts or collect_facts(self.hostname), source="celery", regions=self.regions,
                        concurrency=self.concurrency, started_at=self.started_at)
        self.registered.set()

    def announce(self) -> None:
        """Register the regions and slots at once, before the first task is taken
        (placement counts only live workers); the hardware facts follow from the thread."""
        try:
            self.register(WorkerFacts(self.hostname))
        except Exception:  # the database may be down: the thread retries
            log.warning("worker registry update failed for %s; will retry", self.hostname, exc_info=True)
        self.registered.clear()  # the thread's first beat registers the full facts

    def beat(self) -> None:
        try:
            if not self.registered.is_set() or not heartbeat(self.ctx, self.hostname):
                self.register()
        except Exception:  # the database may be down or the facts unreadable: try later
            self.registered.clear()
            log.warning("worker registry update failed for %s; will retry", self.hostname, exc_info=True)

    def run(self) -> None:
        self.beat()
        while not self.stopped.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self.stopped.set()


@worker_ready.connect
def _register_on_ready(sender: Any = None, **_kwargs: Any) -> None:
    global _heart
    ctx = current_context()
    hostname = str(getattr(sender, "hostname", "") or "") or None
    queues = consumed_queues(sender) if sender is not None else []
    regions = regions_for_queues(ctx, queues)
    _heart = WorkerHeart(ctx, hostname or socket.gethostname(), regions, ctx.settings.worker_heartbeat_s,
                         pool_size(sender) if regions else None)
    _heart.announce()
    _heart.start()


@worker_shutdown.connect
def _stop_heart(**_kwargs: Any) -> None:
    if _heart is not None:
        _heart.stop()
