"""The Celery application (``celery -A greengrader worker|beat|flower``).

Configuration lives in the root ``celeryconfig`` module (built from settings). Celery reads
it on first use, not at import; that is when :class:`GreengraderCelery` adds the region
queues from the region registry and makes the folders the configuration names. A
configuration error then stops ``worker``, ``beat`` or ``flower`` with the one line the
``greengrader`` CLI prints, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_process_init
from kombu import Queue

from greengrader.db import dispose_all
from greengrader.errors import ConfigError
from greengrader.regions.registry import RegionRegistry, configured_regions
from greengrader.settings import get_settings

TASK_MODULES = [
    "greengrader.tasks.schedule",
    "greengrader.tasks.grade",
    "greengrader.tasks.sweep",
    "greengrader.tasks.workers",
]
SCHEDULING_QUEUE = "scheduling"
# Folders of kombu's filesystem transport (the embedded broker) in broker_transport_options.
_BROKER_FOLDERS = ("data_folder_in", "data_folder_out", "control_folder")


def task_queues(regions: RegionRegistry) -> list[Queue]:
    """The scheduling queue and one per enabled region, each bound by its own name.

    A bare ``Queue(name)`` is bound to the default exchange with the default routing key,
    the same for every queue: a publish to that exchange would reach them all.
    """
    names = [SCHEDULING_QUEUE] + [r.queue_name for r in regions.enabled()]
    return [Queue(name, routing_key=name) for name in names]


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        print(f"greengrader: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _make_folders(config: Mapping[str, Any]) -> None:
    """The beat schedule's folder (the home) and the embedded broker's folders."""
    folders = [Path(config["beat_schedule_filename"]).parent]
    options = config.get("broker_transport_options") or {}
    folders += [Path(options[key]) for key in _BROKER_FOLDERS if key in options]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


class GreengraderCelery(Celery):
    """Celery whose region queues and folders are settled when it reads its configuration."""

    def prepare_config(self, c: Any) -> Any:
        with _one_line_errors():
            config = dict(super().prepare_config(c))
            config["task_queues"] = task_queues(configured_regions(get_settings()))
        _make_folders(config)
        return config


def _read_settings(**_kwargs: Any) -> None:
    # Sent before celeryconfig is imported, so invalid settings stop the process with one
    # line. Celery's signals log a receiver's exceptions, but SystemExit is no Exception.
    with _one_line_errors():
        get_settings()


app = GreengraderCelery("greengrader", include=TASK_MODULES)
app.on_configure.connect(_read_settings, weak=False)
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _reset_pools_after_fork(**_kwargs: Any) -> None:
    # Pooled connections inherited through fork are shared with the parent: drop them.
    dispose_all(close=False)


@beat_init.connect
def _announce_beat(**_kwargs: Any) -> None:
    # `greengrader health` counts live beats: none (after one was seen) or two is a fault.
    from greengrader.ops.beatwatch import start_beat_heartbeat

    start_beat_heartbeat(get_settings())
