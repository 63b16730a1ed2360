"""What a Docker grading container tells us on stdout: the wrapper that runs the
autograder, and reading its framed report back from the capped log.

PID 1 is docker-init. The shell unpacks small jobs from the environment (no put_archive
round trip), runs the autograder under ``timeout -s KILL``, then reports on stdout, framed
by a per-job nonce: results.json (base64, size-capped, regular files only) and the
container's cgroup CPU time and memory peak. Reading these from the log stream avoids two
get_archive calls, each of which mounts the container's filesystem.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterable
from typing import Any

from greengrader.grading.executors.base import Limits
from greengrader.grading.executors.outcome import MISSING

ENV_FILES = "GREENGRADER_FILES"

# $1 timeout (s), $2 nonce, $3 results cap (bytes).
WRAPPER = r"""
if [ -n "${GREENGRADER_FILES:-}" ]; then
  printf %s "$GREENGRADER_FILES" | base64 -d | tar -x -C / || { echo "greengrader: cannot unpack the submission" >&2; exit 97; }
fi
unset GREENGRADER_FILES
cd /autograder
timeout -s KILL "$1" /autograder/run_autograder
rc=$?
g=/sys/fs/cgroup
cpu=; mem=
[ -r $g/cpuacct/cpuacct.usage ] && cpu="cpu_ns=$(cat $g/cpuacct/cpuacct.usage)"
[ -r $g/memory/memory.max_usage_in_bytes ] && mem="mem_peak=$(cat $g/memory/memory.max_usage_in_bytes)"
[ -r $g/cpu.stat ] && cpu="cpu_us=$(sed -n 's/^usage_usec //p' $g/cpu.stat)"
[ -r $g/memory.peak ] && mem="mem_peak=$(cat $g/memory.peak)"
# No cgroupfs (gVisor): the CPU time of the waited children, from the shell itself (no fork).
if [ -z "$cpu" ] && times >/tmp/.greengrader-times 2>/dev/null; then
  { read -r _ _; read -r cu cs; } </tmp/.greengrader-times && cpu="ctimes=$cu,$cs"
fi
r=/autograder/results/results.json
if [ -L $r ]; then state="not-regular"; data=
elif [ ! -e $r ]; then state="missing"; data=
elif [ ! -f $r ]; then state="not-regular"; data=
else
  size=$(wc -c < $r)
  if [ "$size" -gt "$3" ]; then state="too-large:$size"; data=
  else state="ok"; data=$(base64 -w0 < $r)
  fi
fi
printf '\n@@%s stats rc=%s %s %s\n@@%s results %s %s\n' "$2" "$rc" "$cpu" "$mem" "$2" "$state" "$data"
exit $rc
"""


def log_cap(limits: Limits) -> int:
    """Bytes of log kept per file: the output cap plus room for the base64 report."""
    return limits.stdout_bytes + limits.results_bytes * 4 // 3 + 8192


def read_capped(chunks: Iterable[bytes], cap: int) -> tuple[bytes, bool]:
    """The last ``cap`` bytes of a stream (memory bounded by 2x cap); and whether any was cut."""
    out = bytearray()
    truncated = False
    for chunk in chunks:
        out += chunk
        if len(out) > 2 * cap:
            del out[: len(out) - cap]
            truncated = True
    if len(out) > cap:
        del out[: len(out) - cap]
        truncated = True
    return bytes(out), truncated


def split_report(log: bytes, nonce: str, cap: int) -> tuple[bytes, dict[str, Any], bytes | None, str | None]:
    """Separate the wrapper's framed report from the autograder's output.

    Returns (output, stats, results.json bytes or None, problem). The last report wins;
    a student who prints a fake one could as well have written results.json (root).
    """
    marker = f"\n@@{nonce} stats ".encode()
    at = log.rfind(marker)
    if at < 0:
        return log, {}, None, f"{MISSING} (the autograder was killed before it finished)"
    output, report = log[:at], log[at + 1 :]
    stats: dict[str, Any] = {}
    raw: bytes | None = None
    problem: str | None = MISSING
    for line in report.split(b"\n"):
        parts = line.decode("ascii", errors="replace").split(" ")
        if len(parts) < 2 or parts[0] != f"@@{nonce}":
            continue
        if parts[1] == "stats":
            stats = parse_stats(parts[2:])
        elif parts[1] == "results" and len(parts) >= 3:
            raw, problem = _decode_report(parts[2], parts[3] if len(parts) > 3 else "", cap)
    return output, stats, raw, problem


def _decode_report(state: str, data: str, cap: int) -> tuple[bytes | None, str | None]:
    if state == "ok":
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error:
            return None, "unreadable (its report was mangled by interleaved output)"
        return (raw, None) if len(raw) <= cap else (None, f"too large (limit {cap} bytes)")
    if state.startswith("too-large:"):
        return None, f"too large ({state.partition(':')[2]} bytes, limit {cap})"
    return None, {"missing": MISSING, "not-regular": "not a regular file"}.get(state, state)


def parse_stats(fields: list[str]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for item in fields:
        key, _, value = item.partition("=")
        if key == "ctimes":
            with contextlib.suppress(ValueError):
                stats["cpu_s"] = sum(_shell_time(part) for part in value.strip().split(","))
            continue
        if not value.strip().isdigit():
            continue
        number = int(value.strip())
        if key == "cpu_ns":
            stats["cpu_s"] = number / 1e9
        elif key == "cpu_us":
            stats["cpu_s"] = number / 1e6
        elif key in ("mem_peak", "rc"):
            stats[key] = number
    return stats


def _shell_time(value: str) -> float:
    """``1m2.500000s`` (the shell's ``times``) in seconds."""
    minutes, _, seconds = value.partition("m")
    return int(minutes) * 60 + float(seconds.rstrip("s"))
