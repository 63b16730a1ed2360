"""What a Docker grading container tells us on stdout: the wrapper that runs the
autograder, and reading its framed report back from the capped log.

PID 1 is the wrapper shell. It writes small jobs' files from the environment (no
put_archive round trip), runs the autograder, stops what it left running, then reports on
stdout, framed by a per-job nonce: the container's CPU time and memory peak, then
results.json as it is (regular files only, at most the cap plus one byte). The wall clock is
the host's: it kills the whole container. Under gVisor every process started costs tens of
milliseconds, so the wrapper starts only what it must (``tar`` only for a submission with
folders, ``head`` to report). Reading the report from the log stream avoids get_archive
calls, each of which mounts the container's filesystem (and sees nothing of a sandbox whose
root is an overlay in memory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from greengrader.grading.executors.base import Limits
from greengrader.grading.executors.outcome import MISSING

ENV_FILES = "GREENGRADER_FILES"

# $1 nonce, $2 results cap (bytes).
WRAPPER = r"""
if [ -n "${GREENGRADER_FILES:-}" ]; then
  eval "$GREENGRADER_FILES" || { echo "greengrader: cannot unpack the submission" >&2; exit 97; }
fi
unset GREENGRADER_FILES
cd /autograder
# The shell is PID 1 (no docker-init: one process less). As PID 1 it gets no signal it has
# no trap for, so a SIGTERM (the daemon stopping the container) is trapped and ends the
# job with 143 and no report; `wait` returns at once on a trapped signal, where a
# foreground command would delay the trap until it ended. Waiting also reaps orphans.
trap 'kill -9 -1 2>/dev/null; exit 143' TERM
/autograder/run_autograder &
wait $!
rc=$?
# Whatever the autograder left running (a `> >(cat)` still copying its output, a server)
# is stopped here, as Gradescope stops it with the container: it would otherwise write
# into the report or change results.json while it is read. -1: all but PID 1 and us.
kill -9 -1 2>/dev/null
g=/sys/fs/cgroup
cpu=; mem=
[ -r $g/cpuacct/cpuacct.usage ] && read -r n <$g/cpuacct/cpuacct.usage && cpu="cpu_ns=$n"
[ -r $g/memory/memory.max_usage_in_bytes ] && read -r n <$g/memory/memory.max_usage_in_bytes && mem="mem_peak=$n"
[ -r $g/cpu.stat ] && while read -r k v; do [ "$k" = usage_usec ] && cpu="cpu_us=$v"; done <$g/cpu.stat
[ -r $g/memory.peak ] && read -r n <$g/memory.peak && mem="mem_peak=$n"
# No cgroupfs (gVisor): the CPU time of the waited children, from the shell itself.
if [ -z "$cpu" ] && times >/tmp/.greengrader-times 2>/dev/null; then
  { read -r _ _; read -r cu cs; } </tmp/.greengrader-times && cpu="ctimes=$cu,$cs"
fi
printf '\n@@%s stats rc=%s %s %s\n' "$1" "$rc" "$cpu" "$mem"
r=/autograder/results/results.json
if [ -L $r ] || { [ -e $r ] && [ ! -f $r ]; }; then printf '@@%s results not-regular\n' "$1"
elif [ ! -e $r ]; then printf '@@%s results missing\n' "$1"
else
  printf '@@%s results ok\n' "$1"
  head -c $(($2 + 1)) $r
  printf '\n@@%s end\n' "$1"
fi
exit $rc
"""


def log_cap(limits: Limits) -> int:
    """Bytes of log kept per file: the output cap plus room for the report."""
    return limits.stdout_bytes + limits.results_bytes + 8192


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
    output, report = log[:at], log[at + len(marker) :]
    stats_line, _, rest = report.partition(b"\n")
    stats = parse_stats(stats_line.decode("ascii", errors="replace").split(" "))
    head, _, body = rest.partition(b"\n")
    state = head.decode("ascii", errors="replace").removeprefix(f"@@{nonce} results ")
    if state != "ok":
        return output, stats, None, {"missing": MISSING, "not-regular": "not a regular file"}.get(state, MISSING)
    end = body.rfind(f"\n@@{nonce} end".encode())
    if end < 0:
        return output, stats, None, "unreadable (its report was cut off)"
    raw = body[:end]
    if len(raw) > cap:
        return output, stats, None, f"too large (more than {cap} bytes, the limit)"
    return output, stats, raw, None


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
