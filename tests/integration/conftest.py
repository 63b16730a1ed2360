"""Fixtures of the scheduling and deadline tests (real Postgres and Redis, real hourly
carbon data, an injected clock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from greengrader.context import Context
from greengrader.db import Database
from greengrader.settings import Settings
from tests.integration.scheduling_helpers import NOW, Clock, celery_for, live_workers


@pytest.fixture(scope="module")
def carbon_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home for the module so the parsed carbon data cache is built once."""
    return tmp_path_factory.mktemp("carbon-home")


@pytest.fixture
def make_ctx(env_settings: Settings, database: Database, redis_url: str, carbon_dir: Path, carbon_home: Path) -> Iterator[Any]:
    def make(broker: str = redis_url, live: list[str] | None = None, **overrides: Any) -> Context:
        settings = env_settings.model_copy(update={
            "home": carbon_home,
            "carbon_source": "dataset", "carbon_data_dir": carbon_dir / "electricitymaps_greendcc",
            "forecast": "oracle", **overrides,
        })
        ctx = Context.from_settings(settings)
        ctx.db = database
        ctx.clock = Clock(NOW)
        ctx.app = celery_for(ctx, broker)
        live_workers(ctx, live)
        return ctx

    yield make


@pytest.fixture
def rds(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


