"""A short, bounded run of the coverage-guided payload harness (``fuzz_payload.py``).

The harness is a libFuzzer process of its own (it calls ``exit()`` when done), so it runs
in a subprocess. Longer campaigns: see docs/fuzzing.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).with_name("fuzz_payload.py")
SECONDS = int(os.environ.get("GREENGRADER_FUZZ_SECONDS", "20"))


def run_harness(tmp_path: Path, shared_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GREENGRADER_FUZZ_DIR": str(tmp_path / "work"), "GREENGRADER_SHARED_DIR": str(shared_dir)}
    return subprocess.run(
        [sys.executable, str(HARNESS), f"-artifact_prefix={tmp_path}/", *args],
        env=env, capture_output=True, text=True, timeout=SECONDS + 120, cwd=tmp_path,
    )


def test_bounded_fuzzing_run_finds_no_crash(tmp_path: Path, shared_dir: Path) -> None:
    proc = run_harness(tmp_path, shared_dir, f"-max_total_time={SECONDS}")
    artifacts = sorted(p.name for p in tmp_path.glob("*-*") if p.name.split("-")[0] in {"crash", "oom", "timeout", "leak"})
    assert proc.returncode == 0 and not artifacts, f"{artifacts}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    # The seeds were loaded (six shared fixtures among them) and the run executed inputs.
    assert "seed corpus:" in proc.stderr and "INITED" in proc.stderr
    done = [line for line in proc.stderr.splitlines() if line.startswith("Done ")]
    assert done and int(done[0].split()[1]) > 1000, proc.stderr[-2000:]


def test_harness_reports_an_unknown_exception_as_a_crash(tmp_path: Path, shared_dir: Path) -> None:
    # The harness must not swallow failures: replayed through a parser planted to raise
    # something other than PayloadRejected, an input makes it exit non-zero.
    crash = tmp_path / "input.zip"
    crash.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    env_hook = tmp_path / "sitecustomize.py"
    env_hook.write_text(
        "import greengrader.payload.parse as p\n"
        "def boom(*a, **k):\n    raise KeyError('planted')\n"
        "p.parse_payload = boom\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "GREENGRADER_FUZZ_DIR": str(tmp_path / "work")}
    proc = subprocess.run(
        [sys.executable, str(HARNESS), str(crash)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    # atheris prints the Python traceback on stdout, libFuzzer's report on stderr.
    assert proc.returncode != 0 and "KeyError: 'planted'" in proc.stdout, proc.stdout[-2000:]
