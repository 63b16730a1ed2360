"""Variables that were settings once and are now constants of the code that uses them.

A deployment that still sets one is told so (``load_settings`` logs it, ``greengrader
doctor`` reports it) instead of seeing a bare "unknown variable".
"""

from __future__ import annotations

REMOVED_VARIABLES: dict[str, str] = {
    "GREENGRADER_FORECAST_CACHE_S": "forecasts are reused for FORECAST_CACHE_S = 60 s, "
                                    "in greengrader/scheduling/placement.py",
    "GREENGRADER_GRADE_DISK_POLL_S": "the disk budget is polled every DISK_POLL_S = 1 s, "
                                     "in greengrader/grading/executors/docker.py",
    "GREENGRADER_BRIDGE_PREPARE_WORKERS": "the bridge prepares payloads in PREPARE_WORKERS = 1 worker process, "
                                          "in greengrader/bridge/offload.py",
}
