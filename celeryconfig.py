"""Celery configuration for GreenGrader, built from ``GREENGRADER_*`` settings.

Importing it reads the settings and nothing else: the region queues (``task_queues``, from
the region registry) and the folders this configuration names are settled by
:class:`greengrader.celery_app.GreengraderCelery` when Celery first reads its configuration.

Reliability choices (see docs/architecture.md): late acks + reject on worker loss so a
killed worker's job is redelivered; prefetch 1 so a worker never hoards long jobs; no
auto-created queues so a mistyped region queue fails loudly; results live in Postgres,
not in the Celery result backend; start times live in the database (released by the
sweep), never as long ETAs in Redis.
"""

from __future__ import annotations

from greengrader.celery_app import SCHEDULING_QUEUE
from greengrader.grading.executors.base import MAX_TIMEOUT_S
from greengrader.settings import get_settings
from greengrader.tasks.names import SCHEDULE_TASK, SWEEP_TASK

_settings = get_settings()

broker_url = _settings.effective_broker_url
result_backend = _settings.result_backend
task_ignore_result = _settings.result_backend is None

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_create_missing_queues = False
broker_connection_retry_on_startup = True
worker_cancel_long_running_tasks_on_connection_loss = True
worker_soft_shutdown_timeout = 10.0
# A grade may build its image (bounded on its own) and then run up to the 40-minute
# maximum; the hard limit covers both, and stays under Redis's visibility timeout so a
# running task is never redelivered while alive.
task_time_limit = MAX_TIMEOUT_S + _settings.image_build_timeout_s + 300
# Redis redelivers unacked messages after the visibility timeout; other transports
# (the embedded SQLAlchemy one) pass these options to their engine, so set it only there.
broker_transport_options: dict[str, object] = {}
if broker_url.startswith(("redis", "rediss")):
    broker_transport_options = {"visibility_timeout": task_time_limit + 600}
elif broker_url.startswith("filesystem"):
    _box = _settings.broker_dir
    broker_transport_options = {
        "data_folder_in": str(_box / "queue"),
        "data_folder_out": str(_box / "queue"),
        "control_folder": str(_box / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
worker_send_task_events = True
task_send_sent_event = True

task_default_queue = SCHEDULING_QUEUE
task_routes = {
    SCHEDULE_TASK: {"queue": SCHEDULING_QUEUE},
    SWEEP_TASK: {"queue": SCHEDULING_QUEUE},
    # greengrader.grade is routed at enqueue time: apply_async(queue=region.queue_name)
}

beat_schedule = {
    "sweep": {"task": SWEEP_TASK, "schedule": _settings.sweep_interval_s},
}
beat_schedule_filename = str(_settings.home / "celerybeat-schedule")
