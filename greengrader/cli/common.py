"""Helpers shared by the CLI modules."""

from __future__ import annotations

from greengrader.context import Context
from greengrader.settings import get_settings


def cli_context() -> Context:
    """A context from the environment; the embedded SQLite database is migrated on demand."""
    settings = get_settings()
    ctx = Context.from_settings(settings)
    if settings.embedded:
        ctx.db.upgrade()
    return ctx
