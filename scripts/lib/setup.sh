# shellcheck shell=bash
# Shared set-up steps for scripts/test.sh and scripts/demo.sh (sourced, not run); the
# standalone scripts/setup-gvisor.sh and scripts/build-base-image.sh take as_root and
# apt_install from here too. Each step checks first and only installs or starts what is
# missing, saying what it does. Callers set `set -euo pipefail`, and cd to the repository
# root before calling the ensure_* steps.

log() { printf '\n== %s\n' "$*"; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "needs root for: $* (run as root, or install sudo)" >&2; return 1
  fi
}

# apt-get as root, never asking. NEEDRESTART_SUSPEND: Debian's needrestart (which docker.io
# recommends) would otherwise restart the machine's other daemons after an install, a shared
# dockerd among them.
apt_get() { as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -q "$@"; }

# apt_install PKG...: quiet when it works, apt's own last words when it does not. The package
# lists are fetched first where there are none (a fresh image ships without them), and again
# when the install fails (a stale list names versions the mirror no longer has).
apt_install() {
  local out rc=0
  out="$(mktemp)"
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    echo "fetching the package lists (apt-get update)"
    apt_get update >"$out" 2>&1 || rc=$?
  fi
  if [ "$rc" = 0 ] && ! apt_get install -y "$@" >"$out" 2>&1; then
    echo "updating the package lists (apt-get update) and retrying"
    { apt_get update && apt_get install -y "$@"; } >"$out" 2>&1 || rc=$?
  fi
  [ "$rc" = 0 ] || { echo "apt-get install $* failed:" >&2; tail -20 "$out" >&2; }
  rm -f "$out"
  return "$rc"
}

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() { for _ in $(seq 60); do up "$1" && return 0; sleep 0.5; done; echo "port $1 did not open" >&2; return 1; }

# ensure_venv SPEC STAMP: .venv with `pip install -e SPEC`, re-installed when pyproject.toml changes.
ensure_venv() {
  local spec="$1" stamp="$2" py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "GreenGrader needs Python 3.11 or newer; $py is $("$py" -V 2>&1 || echo missing)" \
         "(set PYTHON to a newer one)" >&2
    return 1
  fi
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    if ! "$py" -m venv .venv >/dev/null 2>&1; then
      # Debian and Ubuntu ship the venv module (ensurepip) separately.
      rm -rf .venv
      log "installing python3-venv (the Python venv module)"
      apt_install python3-venv
      "$py" -m venv .venv
    fi
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    log "installing Python dependencies ($spec)"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e "$spec"
    touch "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}

# Postgres, Redis and Mosquitto as this machine's packages install them.
ensure_services() {
  if ! up 5432; then
    log "starting Postgres"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start; wait_up 5432
  fi
  if ! up 6379; then
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log; wait_up 6379
  fi
  if ! up 1883; then
    log "starting Mosquitto"
    as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf; wait_up 1883
  fi
}

# Docker daemon (no bridge, no iptables: grading containers run with --network none).
ensure_docker() {
  # gVisor is registered as the runtime runsc: in daemon.json before a dockerd started here
  # reads it, or reloaded with SIGHUP by a running one (never restarted: it may be shared).
  if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then
    log "installing docker.io"
    apt_install docker.io
  fi
  log "gVisor (runsc) runtime"
  local rc=0
  scripts/setup-gvisor.sh || rc=$?
  if [ "$rc" = 3 ] && [ "${GREENGRADER_SANDBOX:-auto}" = auto ]; then
    echo "going on without gVisor: student code runs under runc (GREENGRADER_SANDBOX=auto)" >&2
  elif [ "$rc" != 0 ]; then
    return "$rc"
  fi
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] && as_root docker info >/dev/null 2>&1; then
    echo "the Docker daemon runs, but $(id -un) may not use it: run this as root, or" \
         "sudo usermod -aG docker $(id -un) and log in again" >&2
    return 1
  fi
  log "starting dockerd"
  as_root sh -c 'nohup dockerd --iptables=false --bridge=none >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] && as_root docker info >/dev/null 2>&1; then
      echo "dockerd runs, but $(id -un) may not use it: sudo usermod -aG docker $(id -un), log in again" \
           "and re-run (or run this as root)" >&2
    else
      echo "dockerd did not start; its log is /var/log/dockerd.log" >&2
    fi
    return 1
  fi
}

# docker compose (plugin or Debian's docker-compose) validates deploy/docker-compose.yml.
ensure_compose() {
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    log "installing docker-compose"
    apt_install docker-compose || echo "docker-compose unavailable: deploy tests fall back to the compose-spec schema"
  fi
}
