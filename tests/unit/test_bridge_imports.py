"""The bridge and its spawned worker processes import neither Celery nor the scheduler:
each worker process pays every import on start, and the task names they send come from
:mod:`greengrader.tasks.names`, which imports nothing."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("celery", "greengrader.celery_app", "greengrader.tasks.schedule", "greengrader.scheduling", "numpy")


def test_importing_the_bridge_loads_no_celery_app_and_no_scheduler() -> None:
    code = (
        "import sys\n"
        "import greengrader.bridge.mqtt, greengrader.bridge.offload\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == ""
