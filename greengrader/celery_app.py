"""The Celery application (``celery -A greengrader worker|beat|flower``).

Configuration lives in the root ``celeryconfig`` module (built from settings).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_process_init

from greengrader.db import dispose_all

TASK_MODULES = [
    "greengrader.tasks.schedule",
    "greengrader.tasks.grade",
    "greengrader.tasks.sweep",
    "greengrader.tasks.workers",
]

app = Celery("greengrader", include=TASK_MODULES)
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _reset_pools_after_fork(**_kwargs: Any) -> None:
    # Pooled connections inherited through fork are shared with the parent: drop them.
    dispose_all(close=False)


@beat_init.connect
def _announce_beat(**_kwargs: Any) -> None:
    # `greengrader health` counts live beats: none (after one was seen) or two is a fault.
    from greengrader.ops.beatwatch import start_beat_heartbeat
    from greengrader.settings import get_settings

    start_beat_heartbeat(get_settings())
