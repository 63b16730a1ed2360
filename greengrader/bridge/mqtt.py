"""The MQTT bridge: Mosquitto → :mod:`greengrader.bridge.ingest` → ack → receipt → ``schedule``.

Guarantees (see docs/bridge.md):

* A message is acknowledged (PUBACK) only after the transaction holding its row (submission
  or quarantine) has committed. Subscriptions are QoS 1 on a persistent session (MQTT 5,
  ``clean_start=False`` with a session expiry), so anything unacknowledged when the bridge
  dies is redelivered, and deduplication makes the redelivery harmless.
* paho's network thread only queues messages; a store thread stores and acks, so a slow
  database never starves keepalives. Messages are stored in batches (one commit per batch,
  then every message of the batch is acked); the next batch is validated and pseudonymised
  (in the :mod:`~greengrader.bridge.offload` worker processes) while the previous one is
  stored, and ``schedule`` is enqueued from there after the commit.
* Nothing raised while handling a message stops the bridge: a bad payload is quarantined, a
  database outage is retried (with nothing acked meanwhile), anything else is logged.
* Messages received on an earlier connection are never acked on a later one (packet ids
  are per connection); the broker redelivers them and they come back as duplicates.

The MQTT connection itself (client, session, acks, receipts) is
:mod:`~greengrader.bridge.session`; this module is what the bridge does with the messages.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from tenacity import Retrying, retry_if_exception_type, stop_never, wait_exponential

from greengrader.bridge.ingest import make_store, store_prepared
from greengrader.bridge.offload import Offload
from greengrader.bridge.records import IngestOutcome, Prepared, Rejected
from greengrader.bridge.session import Inbound, MqttSession
from greengrader.errors import DatabaseError, GreengraderError
from greengrader.ops.metrics import PUBLISH_TO_COMMIT
from greengrader.ops.workers import register_worker

if TYPE_CHECKING:
    from greengrader.context import Context

log = logging.getLogger(__name__)

# Most ``schedule`` tasks sent in one broker round trip.
ENQUEUE_BATCH = 500


@dataclass
class _Pending:
    """A batch whose submissions are being prepared."""

    messages: list[Inbound]
    prepared: Callable[[], list[Prepared]]


class Bridge:
    """A long-running MQTT consumer; :meth:`run` blocks until :meth:`stop` (SIGTERM)."""

    def __init__(
        self,
        ctx: Context,
        *,
        on_outcome: Callable[[IngestOutcome], None] | None = None,
        enqueue: bool = True,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.store = make_store(ctx)
        self.offload = Offload(ctx)
        self.on_outcome = on_outcome
        self.enqueue = enqueue
        self._schedule: queue.Queue[int] = queue.Queue(maxsize=100_000)
        self._stop = threading.Event()
        self._session = MqttSession(self.settings, self._stop)
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start the worker threads."""
        self.offload.start()
        self._threads = [
            threading.Thread(target=self._work, name="bridge-store", daemon=True),
            threading.Thread(target=self._enqueue_loop, name="bridge-enqueue", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._session.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._session.wait_connected(timeout)

    def stop(self) -> None:
        """Ask the bridge to stop after the batch in hand (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> None:
        """Start, block until :meth:`stop`, then shut down cleanly."""
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._threads[0].join(timeout=60)
        # Acks of the last batch are queued before DISCONNECT, so they reach the broker.
        self._session.close()
        self._threads[1].join(timeout=5)
        self.offload.close()
        log.info("bridge stopped; %d unacked messages left for redelivery", self._session.inbox.qsize())

    # --- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        # Two batches in hand at most: the next one is prepared (in the worker processes)
        # while this thread stores, acks and receipts the previous one.
        pending: _Pending | None = None
        while not self._stop.is_set():
            try:
                batch = self._next_batch(0.0 if pending else 0.2)
                held, pending = pending, (self._begin(batch) if batch else None)
                if held is not None:
                    self._finish(held)
            except Exception:
                # Messages of a failed batch are neither acked nor quarantined: without a
                # new connection the broker would never send them again (and, with its
                # in-flight window full, nothing else either). Reconnect to have them redelivered.
                log.exception("a bridge batch failed; reconnecting so the broker redelivers it")
                pending = None
                self._session.force_redelivery()
                time.sleep(1)
        if pending is not None:
            try:
                self._finish(pending)
            except Exception:
                log.exception("unexpected error finishing the last batch; it is redelivered")

    def _next_batch(self, timeout: float) -> list[Inbound]:
        inbox = self._session.inbox
        try:
            first = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.settings.bridge_batch_size:
            try:
                batch.append(inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _begin(self, batch: list[Inbound]) -> _Pending | None:
        """Register workers now; start preparing the submissions (None if there are none)."""
        workers = [m for m in batch if self._is_workers_topic(m.topic)]
        subs = [m for m in batch if not self._is_workers_topic(m.topic)]
        for msg in workers:
            self._register_worker(msg)
        if not subs:
            return None
        return _Pending(subs, self.offload.prepare_later([(m.payload, m.topic) for m in subs]))

    def _finish(self, pending: _Pending) -> None:
        """Store a prepared batch in one transaction, then ack, receipt and enqueue it."""
        subs = pending.messages
        prepared = pending.prepared()
        outcomes = self._store_until_committed(prepared)
        if outcomes is None:
            return  # stopping during an outage: nothing acked, the broker redelivers
        committed = time.monotonic()
        for msg, outcome in zip(subs, outcomes, strict=True):
            PUBLISH_TO_COMMIT.observe(committed - msg.received)
            self._session.ack(msg)
            self._session.receipt(outcome)
            if outcome.status == "received" and outcome.submission_id is not None and self.enqueue:
                self._queue_schedule(outcome.submission_id)
            if self.on_outcome is not None:
                self.on_outcome(outcome)

    def _store_until_committed(self, prepared: list[Any]) -> list[IngestOutcome] | None:
        """Retry the batch while the database is unreachable; None if asked to stop meanwhile."""
        retrying = Retrying(
            retry=retry_if_exception_type((OperationalError, InterfaceError, DatabaseError)),
            wait=wait_exponential(multiplier=0.2, max=10),
            stop=stop_never,
            before_sleep=lambda state: log.warning(
                "database unavailable (%s); %d messages held unacked, retrying",
                type(state.outcome.exception()).__name__ if state.outcome else "?", len(prepared),
            ),
            reraise=True,
        )
        for attempt in retrying:
            if self._stop.is_set() and attempt.retry_state.attempt_number > 1:
                return None
            with attempt:
                try:
                    return store_prepared(self.ctx, prepared, self.store)
                except (OperationalError, InterfaceError):
                    raise
                except SQLAlchemyError as exc:
                    # The server is up but refused the data: isolate the poison message
                    # instead of retrying the whole batch forever.
                    return self._store_one_by_one(prepared, exc)
        return None

    def _store_one_by_one(self, prepared: list[Any], first: SQLAlchemyError) -> list[IngestOutcome]:
        log.warning("batch refused by the database (%s); storing messages one by one", type(first).__name__)
        outcomes = []
        for item in prepared:
            try:
                outcomes += store_prepared(self.ctx, [item], self.store)
            except (OperationalError, InterfaceError):
                raise
            except SQLAlchemyError as exc:
                # Accepted items hold the pseudonymised bytes, so no identities reach quarantine.
                sha = item.sha256 if isinstance(item, Rejected) else item.parsed.sha256
                rejected = Rejected("unstorable", type(exc).__name__, item.data, sha, item.topic)
                outcomes += store_prepared(self.ctx, [rejected], self.store)
        return outcomes

    # --- schedule enqueue (own thread: a dead Celery broker must not slow acks) --------------

    def _queue_schedule(self, submission_id: int) -> None:
        try:
            self._schedule.put_nowait(submission_id)
        except queue.Full:
            log.warning("schedule backlog full; submission %s left to the sweep", submission_id)

    def _enqueue_loop(self) -> None:
        while not (self._stop.is_set() and self._schedule.empty()):
            try:
                ids = [self._schedule.get(timeout=0.2)]
            except queue.Empty:
                continue
            # Everything committed meanwhile goes in one broker round trip.
            while len(ids) < ENQUEUE_BATCH:
                try:
                    ids.append(self._schedule.get_nowait())
                except queue.Empty:
                    break
            try:
                self.offload.enqueue_schedule(ids)
            except Exception:
                log.exception("enqueue failed")

    # --- worker registration -----------------------------------------------------------------

    def _is_workers_topic(self, topic: str) -> bool:
        return topic == self.settings.mqtt_workers_topic

    def _register_worker(self, msg: Inbound) -> None:
        """Route a worker registration (the original system's JSON facts) to the registry."""
        try:
            facts = json.loads(msg.payload)
            if not isinstance(facts, dict):
                raise ValueError("registration is not a JSON object")
            register_worker(self.ctx, facts)
        except (ValueError, GreengraderError) as exc:
            log.warning("worker registration rejected: %s", exc)
        except SQLAlchemyError:
            log.warning("database unavailable; worker registration left for redelivery")
            return  # not acked: the broker redelivers it
        except Exception:
            log.exception("worker registration failed")
        self._session.ack(msg)
