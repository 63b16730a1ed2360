"""Scheduling: placement policies (numpy kernels), the CAS service and client, the
``schedule`` decision and the beat sweep. See docs/scheduling.md."""

from __future__ import annotations
