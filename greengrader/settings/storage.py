"""Storage and queues: the database, the Celery broker and the home directory.

With nothing set, GreenGrader runs with no servers at all: a SQLite file in the home
directory holds the data, and Celery uses kombu's filesystem transport in a folder beside
it. The distributed configuration sets ``GREENGRADER_DATABASE_URL`` (Postgres) and
``GREENGRADER_BROKER_URL`` (Redis).
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import BaseModel, Field, ValidationInfo, field_validator

_URL_SCHEMES = {
    "database_url": ("database", ("postgresql", "postgresql+psycopg2", "sqlite")),
    "broker_url": ("broker", ("redis", "rediss", "amqp", "pyamqp", "sqla+sqlite", "sqla+postgresql", "filesystem",
                              "memory")),
}


def data_dir() -> Path:
    """Per-user data directory for the embedded default."""
    return Path(platformdirs.user_data_dir("greengrader", appauthor=False))


class StorageSettings(BaseModel):
    database_url: str = ""
    broker_url: str = ""
    result_backend: str | None = None
    home: Path = Field(default_factory=data_dir)

    @field_validator("database_url", "broker_url")
    @classmethod
    def _check_url_scheme(cls, value: str, info: ValidationInfo) -> str:
        what, schemes = _URL_SCHEMES[info.field_name or ""]
        if value and not value.startswith(tuple(s + ":" for s in schemes)):
            raise ValueError(f"unsupported {what} URL scheme (use one of {', '.join(schemes)})")
        return value

    @property
    def embedded(self) -> bool:
        """True when no database server is configured (SQLite default)."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'greengrader.db'}"

    @property
    def effective_broker_url(self) -> str:
        # kombu's filesystem transport: no server, and unlike the SQLAlchemy transport it
        # implements fanout, so `celery inspect ping`, remote control and Flower work.
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        """Where the embedded (filesystem) broker keeps its messages."""
        return self.home / "broker"
