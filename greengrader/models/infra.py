"""Regions and grading workers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from greengrader.models.base import Base, JSONType, UTCDateTime, utcnow


class RegionRow(Base):
    """The region registry as last synced to the database (for health and reports)."""

    __tablename__ = "region"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    zone: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    untainted_nodes: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(default=True)


class Worker(Base):
    __tablename__ = "worker"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(300), unique=True)
    region: Mapped[str | None] = mapped_column(String(100), index=True)
    ip: Mapped[str | None] = mapped_column(String(100))
    cpu_model: Mapped[str | None] = mapped_column(String(300))
    clock_mhz: Mapped[float | None] = mapped_column(Float)
    sockets: Mapped[int | None] = mapped_column(Integer)
    cores: Mapped[int | None] = mapped_column(Integer)
    cache_size: Mapped[str | None] = mapped_column(String(100))
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Every region whose queue the worker consumes (``region`` is the first of them).
    regions: Mapped[list[str] | None] = mapped_column(JSONType)
    # Grading slots the worker reported at start (its pool size); placement capacity.
    concurrency: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20), default="celery")
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
