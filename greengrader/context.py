"""The collaborators a unit of work needs, built once per process and passed in.

Nothing here connects at import or construction time: the database engine, carbon
provider and Docker client are created on first use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from greengrader.db import Database, get_database
from greengrader.models.base import utcnow
from greengrader.regions.registry import RegionRegistry, configured_regions
from greengrader.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

T = TypeVar("T")
# Far more than the keys in use (placer, inventory, grading executor per node name, image
# builder, power model, carbon provider, worker ids): the bound only stops a leak.
MEMO_LIMIT = 32


class Memo:
    """Objects built on first use and kept, at most ``limit`` of them: past that, the least
    recently used is dropped and built again if asked for (each is a cache of things that
    can be rebuilt, never state that must survive)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._values: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, build: Callable[[], T]) -> T:
        if key in self._values:
            self._values.move_to_end(key)
        else:
            self._values[key] = build()
            while len(self._values) > self.limit:
                self._values.popitem(last=False)
        value: T = self._values[key]
        return value


@dataclass
class Context:
    settings: Settings
    db: Database
    regions: RegionRegistry
    clock: Callable[[], datetime] = field(default=utcnow)
    app: Celery | None = None
    # Objects built once per context on first use (the placer and its forecast cache, the
    # grading executor and image builder): their lifetime is the context's.
    _memo: Memo = field(default_factory=lambda: Memo(MEMO_LIMIT), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: object) -> Context:
        settings = settings or get_settings()
        return cls(
            settings=settings,
            db=get_database(settings),
            regions=configured_regions(settings),
            **kwargs,  # type: ignore[arg-type]
        )

    @cached_property
    def celery(self) -> Celery:
        if self.app is not None:
            return self.app
        from greengrader.celery_app import app

        return app

    def now(self) -> datetime:
        return self.clock()

    def memo(self, key: str, build: Callable[[], T]) -> T:
        """``build()`` once per context and key; later calls return the same object."""
        return self._memo.get(key, build)


_context: Context | None = None


def current_context() -> Context:
    """The process-wide context used by Celery tasks (built lazily from settings)."""
    global _context
    if _context is None:
        _context = Context.from_settings()
    return _context


def set_current_context(ctx: Context | None) -> None:
    """Install a context for tasks in this process (tests, the embedded demo)."""
    global _context
    _context = ctx
