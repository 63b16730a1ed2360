"""The course-staff dashboard (``greengrader web``): pages, a read-only JSON API, accounts."""

from __future__ import annotations

from greengrader.web.app import create_app

__all__ = ["create_app"]
