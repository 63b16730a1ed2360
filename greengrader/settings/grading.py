"""Grading: the executor, assignment images, a run's limits and sandbox; see docs/grading.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class GradingSettings(BaseModel):
    executor: str = "docker"
    base_image: str = "greengrader/autograder-base:bookworm"
    image_prefix: str = "greengrader/assignment"
    # Bound on one image build (setup.sh); it never counts against the grading limit.
    image_build_timeout_s: int = Field(default=900, ge=10, le=7200)
    build_ca_bundle: Path | None = Path("/etc/ssl/certs/ca-certificates.crt")
    grade_timeout_s: int = Field(default=600, ge=1, le=2400)
    grade_memory_mb: int = Field(default=768, ge=64)
    grade_cpus: float = Field(default=1.0, gt=0)
    grade_pids_limit: int = Field(default=256, ge=16)
    grade_disk_mb: int = Field(default=1024, ge=16)
    grade_fsize_mb: int = Field(default=256, ge=1)
    grade_nofile: int = Field(default=1024, ge=64)
    grade_strict: bool = False
    grade_stdout_bytes: int = Field(default=1 << 20, ge=1024)
    grade_results_bytes: int = Field(default=1 << 20, ge=1024)
    # gVisor by default where the daemon has it (see docs/grading.md, "Sandbox")
    sandbox: Literal["auto", "gvisor", "runc"] = "auto"
    gvisor_runtime: str = Field(default="runsc", min_length=1)
    # Agreement with Gradescope (see docs/grading.md, "Agreement")
    agreement_regrades: int = Field(default=2, ge=0, le=10)
