"""GreenGrader: a carbon-aware distributed autograder.

``celery -A greengrader`` finds the Celery app through the lazy ``app`` attribute, so
importing the package itself stays cheap and never touches settings.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from greengrader.celery_app import app

        return app
    raise AttributeError(name)
