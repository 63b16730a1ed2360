"""Liveness: worker heartbeats and the thresholds of ``greengrader health`` (Nagios).

An age threshold of 0 disables it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthSettings(BaseModel):
    worker_heartbeat_s: float = Field(default=20.0, ge=5, le=300)
    health_timeout_s: float = Field(default=5.0, gt=0)
    health_heartbeat_max_age_s: float = Field(default=90.0, gt=0)
    health_min_workers_per_region: int = Field(default=1, ge=0)
    health_message_age_warn_s: float = Field(default=0.0, ge=0)
    health_message_age_crit_s: float = Field(default=0.0, ge=0)
    health_unscheduled_warn_s: float = Field(default=300.0, ge=0)
    health_unscheduled_crit_s: float = Field(default=1800.0, ge=0)
    health_backlog_warn: int = Field(default=1000, ge=0)
    health_backlog_crit: int = Field(default=10000, ge=0)
    health_check_mqtt: bool = True
    health_check_docker: bool = True
