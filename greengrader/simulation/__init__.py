"""Replay submission traces through the scheduling policies over real carbon data."""

from __future__ import annotations
