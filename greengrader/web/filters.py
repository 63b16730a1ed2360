"""Jinja2 filters: numbers, times, agreement (in words and symbols, never colour alone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment


def num(value: Any, digits: int = 2) -> str:
    if value is None or isinstance(value, bool):
        return "—"
    return f"{float(value):,.{digits}f}"


def grams(value: Any) -> str:
    """gCO2 with three significant digits (jobs emit fractions of a gram; courses kilograms)."""
    if value is None or isinstance(value, bool):
        return "—"
    v = float(value)
    if abs(v) >= 1000:
        return f"{v / 1000:,.3g} kg"
    return f"{v:.3g} g"


def short_time(value: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM`` (UTC as stored)."""
    return "—" if not value else value.replace("T", " ")[:16]


def when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def agreement(value: bool | None) -> str:
    return {True: "✓ agrees", False: "✗ differs"}.get(value, "— unknown") if value is not None else "— unknown"


def query(params: dict[str, str], **more: Any) -> str:
    return urlencode({**params, **{k: str(v) for k, v in more.items()}})


def install(env: Environment) -> None:
    env.filters.update(num=num, grams=grams, when=when, short_time=short_time, agreement=agreement, query=query)
