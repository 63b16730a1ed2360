#!/usr/bin/env bash
# Install gVisor (Debian's `runsc` package) and register it with dockerd as a runtime.
#   scripts/setup-gvisor.sh          # idempotent; needs root (or sudo)
# Writes the runtime into dockerd's daemon.json (other keys are kept) and, when dockerd is
# already running, sends it SIGHUP: runtimes are reloadable, running containers are not
# touched. A dockerd started afterwards reads daemon.json itself.
#   DOCKER_DAEMON_JSON  the file (default /etc/docker/daemon.json)
#   GVISOR_RUNTIME      the runtime's name (default runsc, as GREENGRADER_GVISOR_RUNTIME)
#   GVISOR_PLATFORM     ptrace (default: works everywhere) or kvm (needs /dev/kvm)
# Exits 3 when runsc cannot be installed from the machine's package sources.
set -euo pipefail
config="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
name="${GVISOR_RUNTIME:-runsc}"
platform="${GVISOR_PLATFORM:-ptrace}"
# shellcheck source=scripts/lib/setup.sh
. "$(dirname "$0")/lib/setup.sh"

if ! command -v runsc >/dev/null; then
  echo "installing runsc (gVisor)"
  if ! apt_install runsc; then
    # Exit 3: not packaged here (older Ubuntu releases); callers may go on under runc.
    echo "runsc is not installable from this machine's package sources; gVisor's own apt" \
         "repository has it (docs/grading.md)" >&2
    exit 3
  fi
fi
path="$(command -v runsc)"

# --network=none: grading containers have no network, and without it runsc refuses to
# start in the host's network namespace ("cannot run with network enabled in root
# network namespace") when dockerd runs with --bridge=none.
as_root mkdir -p "$(dirname "$config")"
changed=0
as_root python3 - "$config" "$name" "$path" "$platform" <<'PY' || changed=$?
import json, os, sys, tempfile
config, name, path, platform = sys.argv[1:]
try:
    with open(config) as f:
        data = json.load(f)
except FileNotFoundError:
    data = {}
want = {"path": path, "runtimeArgs": [f"--platform={platform}", "--network=none"]}
if data.get("runtimes", {}).get(name) == want:
    sys.exit(0)
data.setdefault("runtimes", {})[name] = want
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(config) or ".", prefix=".daemon.json.")
with os.fdopen(fd, "w") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
os.chmod(tmp, 0o644)
os.replace(tmp, config)
sys.exit(10)
PY
[ "$changed" = 0 ] || [ "$changed" = 10 ] || exit "$changed"

# The daemon to reload is the one this machine's pid file names: `pidof dockerd` would also
# find another root's daemon (a chroot's or a container's sees the same process table) and
# reload a daemon that never reads this daemon.json.
pidfile=/var/run/docker.pid
pid=""
[ -r "$pidfile" ] && pid="$(cat "$pidfile")"
if [ -n "$pid" ] && ! [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
  pid=""  # stale: that dockerd is gone
fi
if [ -z "$pid" ]; then
  if docker info >/dev/null 2>&1 || as_root docker info >/dev/null 2>&1; then
    echo "gVisor registered as runtime $name in $config, but the running dockerd has no pid file" \
         "$pidfile to reload it by: reload it yourself (systemctl reload docker, or kill -HUP its pid)" >&2
    exit 1
  fi
  echo "gVisor registered as runtime $name in $config (dockerd not running: it reads it at start)"
  exit 0
fi
if [ "$changed" = 10 ]; then
  echo "gVisor registered as runtime $name in $config; reloading dockerd ($pid)"
  as_root kill -HUP "$pid"
fi
for _ in $(seq 120); do  # a dockerd that is still starting answers later
  as_root docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' 2>/dev/null | grep -qw "$name" && exit 0
  sleep 0.5
done
echo "dockerd ($pid) does not list the runtime $name after reloading $config" >&2
exit 1
