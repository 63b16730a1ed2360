"""Every script under benchmarks/ runs as shipped, at a tiny size, so none can rot unnoticed.

These check that the scripts work and print their figures, not the figures themselves
(the speed targets are measured by running the scripts at full size; docs/performance.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, clean_environ

BENCHMARKS = REPO / "benchmarks"

# script -> (tiny arguments, text its output must contain)
SMOKE: dict[str, tuple[list[str], str]] = {
    "carbon.py": (["--queries", "200"], "zones (vectorised)"),
    "simulate.py": (["--jobs", "2000"], "full simulate()"),
    "schedule.py": (["--seconds", "0.5", "--clients", "1", "--workers", "1"], "through CAS HTTP"),
    "ingest.py": (["-n", "30", "--size", "5000", "--publishers", "1"], "load_1min_at_start"),
    "overhead.py": (["-n", "2", "--warmup", "1"], "turnaround"),
    "soak.py": (["--duration", "6", "--rate", "1", "--faults", "", "--settle", "120"], "verdict: OK"),
    "deadline.py": (["--submissions", "6", "--window", "3", "--baseline-jobs", "2", "--settle", "240"],
                    "pipeline / bare"),
    "sandbox.py": (["-n", "1", "--jobs", "2", "--cpu-s", "0.5"], "| autograder |"),
    "web.py": (["-n", "300", "--repeat", "2"], "median ms"),
}


def test_every_benchmark_script_has_a_smoke_run() -> None:
    assert {p.name for p in BENCHMARKS.glob("*.py")} == set(SMOKE)


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_as_shipped(script: str, base_image: str, docker_client: Any,
                                   shared_dir: Path) -> None:
    args, expected = SMOKE[script]
    env = {**clean_environ(), "GREENGRADER_SHARED_DIR": str(shared_dir)}
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert expected in out.stdout, out.stdout[-3000:]
    assert "Traceback" not in out.stderr
