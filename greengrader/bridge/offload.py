"""CPU work moved out of the bridge process, so the bridge is not held to one core.

Two jobs of the bridge are pure Python CPU under the GIL that its other threads (MQTT I/O,
the database batch, acks and receipts) also need: :func:`~greengrader.bridge.ingest.prepare`
(zip checks, metered inflate, hashing, pseudonymisation; ~0.5 ms per 50 KB payload) and
sending the ``schedule`` tasks of a committed batch (~0.1 ms per task in Celery and kombu).
With ``PREPARE_WORKERS`` > 0 both run in that many spawned worker processes; 0 keeps
them in the bridge process.

Guarantees are unchanged: a batch is stored and acked by the bridge only after its
preparation came back, and the enqueue happens after the commit, as before; an enqueue lost
with a worker leaves its rows ``received`` for the sweep. A worker that dies on a payload
(out of memory on a hostile zip, a crash in a codec) does not take the bridge down: the pool
is rebuilt, the batch is prepared one message at a time, and a message that kills a worker
again is quarantined as ``internal_error``.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from greengrader.bridge.ingest import enqueue_schedule_many, prepare
from greengrader.bridge.records import Prepared, Rejected
from greengrader.payload.digest import sha256_hex
from greengrader.settings import Settings
from greengrader.tasks.names import SCHEDULE_TASK

if TYPE_CHECKING:
    from greengrader.context import Context

log = logging.getLogger(__name__)
# One spawned process takes this CPU work off the bridge's GIL; 0 (all in the bridge) was
# slower and a second process did not help on 2 cores (docs/performance.md).
PREPARE_WORKERS = 1


class _Worker:
    """State of one worker process (set by the pool initializer, never in the bridge)."""

    settings: Settings | None = None
    ctx: Context | None = None


def _init_worker(settings: Settings) -> None:
    _Worker.settings = settings
    parent = multiprocessing.parent_process()
    if parent is not None:
        # A bridge killed with SIGKILL cannot shut its pool down, and the worker's own queue
        # handles keep it waiting forever: leave when the parent's sentinel fires.
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def _prepare_in_worker(data: bytes, topic: str | None) -> Prepared:
    assert _Worker.settings is not None, "pool initializer did not run"
    return prepare(_Worker.settings, data, topic)


def _enqueue_in_worker(submission_ids: list[int]) -> bool:
    assert _Worker.settings is not None, "pool initializer did not run"
    if _Worker.ctx is None:
        from greengrader.context import Context

        _Worker.ctx = Context.from_settings(_Worker.settings)
    return enqueue_schedule_many(_Worker.ctx, submission_ids)


def _ready() -> bool:
    # Import Celery and build the app now: on first use it costs ~0.5 s of CPU in the
    # middle of the first batches.
    assert _Worker.settings is not None, "pool initializer did not run"
    try:
        from greengrader.context import Context

        _Worker.ctx = Context.from_settings(_Worker.settings)
        app = _Worker.ctx.celery
        app.amqp.router.route({}, SCHEDULE_TASK)
        with app.producer_or_acquire():  # connects to the Celery broker
            pass
    except Exception:  # the first enqueue retries and logs
        _Worker.ctx = None
    return True


class Offload:
    """Prepares batches and sends ``schedule`` tasks, in worker processes when ``workers`` > 0."""

    def __init__(self, ctx: Context, workers: int = PREPARE_WORKERS) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        # The store thread and the enqueue thread share the pool: one lock, and a broken
        # pool is replaced only by whoever still holds that very pool.
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the workers now (each imports the package once) rather than on first use."""
        if self.workers > 0:
            self._executor().submit(_ready).result(timeout=120)

    def prepare_later(self, items: Sequence[tuple[bytes, str | None]]) -> Callable[[], list[Prepared]]:
        """Start preparing ``items`` in the workers; the returned function waits for the
        result: one :class:`Prepared` per ``(payload, topic)``, in order, never raising for
        bad input. Lets the bridge store one batch while the next is being prepared."""
        if self.workers <= 0 or not items:
            return lambda: [prepare(self.settings, data, topic) for data, topic in items]
        pool = self._executor()
        try:
            chunk = max(1, -(-len(items) // self.workers))  # one round trip per worker
            datas, topics = zip(*items, strict=True)
            results = pool.map(_prepare_in_worker, datas, topics, chunksize=chunk)
        except BrokenProcessPool:
            return lambda: self._recover(items, pool)

        def wait() -> list[Prepared]:
            try:
                return list(results)
            except BrokenProcessPool:
                return self._recover(items, pool)

        return wait

    def _recover(self, items: Sequence[tuple[bytes, str | None]], broken: ProcessPoolExecutor) -> list[Prepared]:
        log.error("a bridge worker process died; preparing the batch one message at a time")
        self._reset(broken)
        return [self._prepare_one(data, topic) for data, topic in items]

    def enqueue_schedule(self, submission_ids: Sequence[int]) -> None:
        """Send ``schedule`` for committed submissions (in a worker: returns at once)."""
        if self.workers <= 0 or self.ctx.app is not None:  # a Celery app passed in stays here
            enqueue_schedule_many(self.ctx, submission_ids)
            return
        pool = self._executor()
        try:
            pool.submit(_enqueue_in_worker, list(submission_ids)).add_done_callback(_log_failure)
        except BrokenProcessPool:
            self._reset(pool)
            log.warning("bridge worker pool broken; %d submissions left to the sweep", len(submission_ids))

    def close(self) -> None:
        """Finish queued work (the last enqueues included), then stop the workers."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _prepare_one(self, data: bytes, topic: str | None) -> Prepared:
        pool = self._executor()
        try:
            return pool.submit(_prepare_in_worker, data, topic).result()
        except BrokenProcessPool:
            self._reset(pool)
            sha = sha256_hex(data)
            log.error("payload sha256 %s killed a bridge worker process; quarantined", sha[:12])
            return Rejected("internal_error", "the validation worker died on this payload", data, sha, topic)

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the bridge process holds threads, sockets and DB connections.
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(self.settings,),
                )
            return self._pool

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        """Drop ``broken`` if it is still the pool in use (another thread may have already)."""
        with self._lock:
            if self._pool is not broken:
                return
            self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)


def _log_failure(future: Future[bool]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("schedule enqueue in a worker failed (%s); the sweep will retry", type(exc).__name__)
