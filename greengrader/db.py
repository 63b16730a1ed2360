"""Database access: lazily created engines, sessions, migrations.

Engines are created on first use (never at import) and disposed in each forked Celery
child (``worker_process_init``) because pooled connections must not cross a fork.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from greengrader.errors import DatabaseError
from greengrader.settings import Settings

_lock = threading.Lock()
_databases: dict[str, Database] = {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout waits instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Database:
    """One database URL: a lazily created engine and a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with _lock:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        if self.is_sqlite:
            path = self.url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                self.url, pool_pre_ping=True, connect_args={"timeout": 30, "check_same_thread": False}
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(
            self.url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_recycle=1800
        )

    def session(self) -> Session:
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.session() as session, session.begin():
            yield session

    def dispose(self, close: bool = True) -> None:
        if self._engine is not None:
            self._engine.dispose(close=close)

    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(resources.files("greengrader") / "migrations"))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["engine"] = self.engine
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        command.upgrade(self.alembic_config(), revision)

    def downgrade(self, revision: str = "base") -> None:
        command.downgrade(self.alembic_config(), revision)

    def check(self) -> None:
        """Raise if the models and the migrations disagree (``alembic check``)."""
        command.check(self.alembic_config())


def get_database(settings: Settings) -> Database:
    """The process-wide :class:`Database` for the configured URL."""
    url = settings.effective_database_url
    with _lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url)
    return db


def dispose_all(close: bool = False) -> None:
    """Drop inherited pools after a fork (``close=False`` leaves the parent's sockets alone)."""
    with _lock:
        for db in _databases.values():
            db.dispose(close=close)


def safe_url(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


# Driver messages (psycopg2 / sqlite3) that mean "the schema is not there (yet)".
_NOT_MIGRATED = ("does not exist", "no such table", "undefinedtable", "undefinedcolumn", "no such column")


def describe_error(exc: SQLAlchemyError, url: str) -> DatabaseError:
    """One line saying what went wrong with the database at ``url`` and what to do."""
    where = safe_url(url)
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    detail = (str(orig) if orig is not None else str(exc)).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    lowered = f"{type(orig).__name__ if orig is not None else ''} {first}".lower()
    if "database" in lowered and "does not exist" in lowered:
        name = make_url(url).database if url.startswith("postgres") else "?"
        return DatabaseError(f"database {name!r} does not exist at {where}: create it "
                             f"(createdb {name}) and run `greengrader db upgrade`")
    if any(marker in lowered for marker in _NOT_MIGRATED):
        return DatabaseError(f"database {where} is not migrated ({first}): run `greengrader db upgrade`")
    if "connection refused" in lowered or "could not connect" in lowered or "could not translate host" in lowered:
        return DatabaseError(f"cannot connect to the database at {where} ({first}); "
                             "is it running, and is GREENGRADER_DATABASE_URL right?")
    return DatabaseError(f"database error at {where}: {first}")
