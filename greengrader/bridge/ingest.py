"""The one ingestion code path, shared by the MQTT bridge and the CLI.

bytes → :func:`prepare` (validate, pseudonymise; pure) → :class:`Store` (one transaction) →
commit → :func:`enqueue_schedule`. The submission row itself is the outbox: if the Celery
broker is down, or the process dies between commit and enqueue, the row stays ``received``
and the beat sweep enqueues it later. Nothing here logs student data: log lines carry the
Gradescope submission id, a sha256 prefix and the rejection reason only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from greengrader.bridge.privacy import (
    pseudonymise_metadata,
    pseudonymise_payload,
    pseudonymise_users,
)
from greengrader.bridge.records import Accepted, IngestOutcome, Prepared, Rejected
from greengrader.bridge.store import Store
from greengrader.errors import PayloadRejected
from greengrader.ops.metrics import PAYLOADS
from greengrader.payload.digest import sha256_hex
from greengrader.payload.limits import Limits
from greengrader.payload.parse import parse_payload_entries
from greengrader.settings import Settings
from greengrader.tasks.names import SCHEDULE_TASK

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Connection, Producer

    from greengrader.context import Context

log = logging.getLogger(__name__)


def prepare(settings: Settings, data: bytes, topic: str | None = None) -> Prepared:
    """Validate and pseudonymise one payload; never raises for bad input."""
    try:
        parsed, entries = parse_payload_entries(data, Limits.from_settings(settings))
    except PayloadRejected as exc:
        return Rejected(exc.reason, exc.detail, data, sha256_hex(data), topic)
    except Exception as exc:  # a parser bug must quarantine the payload, not kill the bridge
        log.exception("payload parser failed on sha256 %s", sha256_hex(data)[:12])
        return Rejected("internal_error", type(exc).__name__, data, sha256_hex(data), topic)
    if not settings.pseudonymise:
        return Accepted(parsed, data, parsed.metadata, parsed.users, topic)
    key = settings.pseudonym_secret()
    metadata = pseudonymise_metadata(parsed.metadata, key)
    stored = pseudonymise_payload(data, parsed.metadata_path, metadata, entries)
    return Accepted(parsed, stored, metadata, pseudonymise_users(parsed.users, key), topic)


def store_prepared(ctx: Context, items: Sequence[Prepared], store: Store | None = None) -> list[IngestOutcome]:
    """Store ``items`` in one transaction (database errors propagate; nothing is committed)."""
    store = store or make_store(ctx)
    outcomes = store.store(items, ctx.now())
    for outcome in outcomes:
        PAYLOADS.labels(outcome=outcome.status).inc()
        log_outcome(outcome)
    return outcomes


def make_store(ctx: Context) -> Store:
    return Store(ctx.db, quarantine_keep_bytes=ctx.settings.quarantine_keep_bytes)


def ingest_bytes(ctx: Context, data: bytes, topic: str | None = None, *, store: Store | None = None) -> IngestOutcome:
    """Validate, store and enqueue one payload (the CLI path; the bridge batches)."""
    outcome = store_prepared(ctx, [prepare(ctx.settings, data, topic)], store)[0]
    if outcome.status == "received" and outcome.submission_id is not None:
        enqueue_schedule(ctx, outcome.submission_id)
    return outcome


def enqueue_schedule(ctx: Context, submission_id: int) -> bool:
    """Fast path to ``schedule`` after commit; False (logged) if the broker is unreachable.

    No retries here: a stale ``received`` row is re-enqueued by the sweep, so blocking the
    caller on a dead broker would only delay acknowledgements.
    """
    try:
        ctx.celery.send_task(SCHEDULE_TASK, args=[submission_id], retry=False)
    except Exception as exc:  # kombu raises many transport-specific types
        log.warning(
            "could not enqueue schedule for submission %s (%s); the sweep will retry",
            submission_id, type(exc).__name__,
        )
        return False
    return True


def enqueue_schedule_many(ctx: Context, submission_ids: Sequence[int]) -> bool:
    """:func:`enqueue_schedule` for a committed batch, in one broker round trip.

    The tasks go through one producer in a kombu publish batch, which the Redis transport
    sends as one pipeline (other transports publish one by one). On failure some may have
    been sent and some not: the rows not yet scheduled stay ``received`` and the sweep
    enqueues them; a task sent twice finds its row scheduled.
    """
    if not submission_ids:
        return True
    app = ctx.celery
    try:
        with app.pool.acquire(block=True) as pooled:
            conn = cast("Connection", pooled)  # celery-types types the pool as producers
            # Fail fast when the broker is down: kombu's default is to retry for the whole
            # connect timeout (~6 s per batch), which would stall ingestion; the rows stay
            # `received` and the sweep enqueues them once the broker is back.
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=1, interval_max=1)
            producer: Any = app.amqp.Producer(conn)  # kombu's Producer.batch is not in the stubs
            with producer.batch(max_size=2 * len(submission_ids) + 8):
                _publish_schedule(app, producer, submission_ids)
    except Exception as exc:  # kombu raises many transport-specific types
        log.warning(
            "could not enqueue schedule for %d submissions (%s); the sweep will retry",
            len(submission_ids), type(exc).__name__,
        )
        return False
    return True


def _publish_schedule(app: Celery, producer: Producer, submission_ids: Sequence[int]) -> None:
    """Publish ``schedule`` tasks as ``send_task`` would, less its per-call cost.

    ``send_task`` re-resolves routing and options, declares the queue and sends a
    ``task-sent`` event for every task: ~0.5 ms of CPU per task, as much as validating the
    payload. The message itself is still built by Celery (``create_task_message``, the
    protocol 2 format) and the publish signals still fire. The one difference is that no
    ``task-sent`` event is sent: Flower shows a ``schedule`` task from the moment a worker
    receives it (``task-received``), and the ``scheduling`` queue's length on its Broker
    page; other tasks keep ``task_send_sent_event``.
    """
    from celery.signals import after_task_publish, before_task_publish
    from kombu.utils.uuid import uuid

    queue = app.amqp.router.route({}, SCHEDULE_TASK)["queue"]
    producer.maybe_declare(queue)  # once per batch, not once per task
    delivery_mode = queue.exchange.delivery_mode or app.conf.task_default_delivery_mode
    conf = app.conf
    for submission_id in submission_ids:
        task_id = uuid()
        # The reprs Celery would build with saferepr, for a fraction of the cost.
        headers, properties, body, _ = app.amqp.create_task_message(
            task_id, SCHEDULE_TASK, [submission_id], {}, reply_to=app.thread_oid, ignore_result=False,
            argsrepr=f"[{submission_id}]", kwargsrepr="{}",
        )
        app.backend.on_task_call(producer, task_id)
        before_task_publish.send(
            sender=SCHEDULE_TASK, body=body, exchange="", routing_key=queue.name, declare=[],
            headers=headers, properties=properties, retry_policy={},
        )
        producer.publish(
            body, exchange="", routing_key=queue.name, serializer=conf.task_serializer,
            compression=conf.task_compression, retry=False, delivery_mode=delivery_mode,
            headers=headers, **properties,
        )
        after_task_publish.send(sender=SCHEDULE_TASK, body=body, headers=headers, exchange="", routing_key=queue.name)


def log_outcome(outcome: IngestOutcome) -> None:
    if outcome.status == "quarantined":
        log.warning(
            "quarantined payload sha256 %s: %s (quarantine %s)",
            outcome.sha256[:12], outcome.reason, outcome.quarantine_id,
        )
    else:
        log.info(
            "%s submission %s (gradescope %s, sha256 %s)",
            outcome.status, outcome.submission_id, outcome.gradescope_id, outcome.sha256[:12],
        )
