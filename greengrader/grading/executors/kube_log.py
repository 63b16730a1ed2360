"""The grading container's log: the wrapper that frames the autograder's output and
results.json, and reading it back.

Logs survive the container (unlike files) and are read with ``limit_bytes`` before
``ttlSecondsAfterFinished`` removes the pod. The wrapper prints at most ``stdout_bytes`` of
the output, a marker line carrying a per-run nonce, the exit code and runtime, then
``results.json`` base64-encoded, then an end marker; the last marker wins, so nothing the
student prints earlier can pose as results.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from greengrader.grading.executors.base import Limits
from greengrader.grading.executors.outcome import MISSING

# $1 time limit (s), $2 nonce, $3 output cap, $4 results cap, $5 fsize (512-byte blocks),
# $6 open files. dash's ulimit counts -f in 512-byte blocks; a non-root user may lower limits.
WRAPPER = r"""
t="$1"; nonce="$2"; out_cap="$3"; res_cap="$4"
ulimit -f "$5" 2>/dev/null; ulimit -n "$6" 2>/dev/null
out=/autograder/.greengrader/output
r=/autograder/results/results.json
mkdir -p /autograder/results /autograder/.greengrader
cd /autograder
start=$(date +%s%N)
timeout -k 5 "$t" /autograder/run_autograder >"$out" 2>&1 </dev/null
rc=$?
end=$(date +%s%N)
ulimit -f unlimited 2>/dev/null
size=$(wc -c <"$out")
head -c "$out_cap" "$out"
if [ -L "$r" ] || [ ! -f "$r" ]; then state=missing
else rsize=$(wc -c <"$r"); if [ "$rsize" -gt "$res_cap" ]; then state="too_large:$rsize"; else state=ok; fi
fi
printf '\n@@GG-RESULTS %s rc=%s runtime_ns=%s output_bytes=%s results=%s@@\n' "$nonce" "$rc" "$((end - start))" "$size" "$state"
if [ "$state" = ok ]; then base64 "$r"; fi
printf '@@GG-END %s@@\n' "$nonce"
exit 0
"""

_MARKER = re.compile(
    r"@@GG-RESULTS (?P<nonce>\S+) rc=(?P<rc>-?\d+) runtime_ns=(?P<ns>-?\d+) "
    r"output_bytes=(?P<out>\d+) results=(?P<state>[a-z_]+(?::\d+)?)@@\n"
)


def log_limit_bytes(limits: Limits) -> int:
    """Enough log bytes for the capped output, the marker and base64 results (76-col lines)."""
    encoded = (limits.results_bytes + 2) // 3 * 4
    return limits.stdout_bytes + 1024 + encoded + encoded // 76 + 1


@dataclass(frozen=True)
class LogReport:
    """What the wrapper printed: the autograder's output and the results block."""

    output: str
    exit_code: int | None
    runtime_s: float | None
    output_bytes: int
    raw_results: bytes | None
    problem: str | None


def parse_log(log: str, nonce: str) -> LogReport:
    """Split the main container's log into output and results (the last block wins)."""
    start = log.rfind(f"@@GG-RESULTS {nonce} ")
    match = _MARKER.match(log, start) if start >= 0 else None
    if match is None:
        return LogReport(log, None, None, len(log.encode()), None, f"{MISSING} (the run was cut short)")
    output = log[:start].removesuffix("\n")
    end = log.find(f"@@GG-END {nonce}@@", match.end())
    body = log[match.end(): end if end >= 0 else len(log)]
    state = match.group("state")
    raw: bytes | None = None
    problem: str | None = None
    if state == "ok":
        if end < 0:
            problem = "cut short in the log"
        else:
            try:
                raw = base64.b64decode("".join(body.split()), validate=True)
            except ValueError:
                problem = "unreadable in the log"
    elif state.startswith("too_large"):
        problem = f"too large ({state.partition(':')[2]} bytes)"
    else:
        problem = MISSING
    ns = int(match.group("ns"))
    return LogReport(
        output=output,
        exit_code=int(match.group("rc")),
        runtime_s=ns / 1e9 if ns >= 0 else None,
        output_bytes=int(match.group("out")),
        raw_results=raw,
        problem=problem,
    )

