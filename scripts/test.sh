#!/usr/bin/env bash
# The one test command: installs what is missing on a fresh machine, starts the services
# the tests use, then runs ruff, mypy and every test suite.
#   scripts/test.sh                 # everything
#   scripts/test.sh tests/unit -k x # pass-through pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

# 1. Python environment (re-installed only when pyproject.toml changes).
ensure_venv '.[dev,k8s]' .venv/.greengrader-installed

# 2. Services (Postgres, Redis, Mosquitto) as this machine's packages install them.
ensure_services

# 3. Docker daemon, and docker compose for the deploy tests.
ensure_docker
ensure_compose

# Chromium for the dashboard's browser tests: Playwright drives Debian's build
# (`playwright install` downloads browsers and cannot work offline).
if ! command -v chromium >/dev/null; then
  log "installing chromium"
  apt_install chromium
fi

# 4. Base image for assignment images (built once with debootstrap, then cached).
scripts/build-base-image.sh

# 5. Lint, types, tests.
log "ruff"
ruff check .
log "mypy"
mypy
log "security checks (bandit, pip-audit)"
# pip-audit needs PyPI's JSON API or osv.dev; where neither is reachable it warns instead.
AUDIT_UNREACHABLE="${AUDIT_UNREACHABLE:-warn}" scripts/security-checks.sh
log "pytest"
if [ "$#" -gt 0 ]; then
  set +e; pytest "$@"; rc=$?; set -e
else
  suites=()
  for d in tests/unit tests/integration tests/acceptance tests/faults; do
    [ -d "$d" ] && suites+=("$d")
  done
  set +e; pytest -p no:cacheprovider "${suites[@]}"; rc=$?; set -e
fi
# Exit code 5 means "no tests collected": not a failure of the code under test.
[ "$rc" -eq 5 ] && rc=0
exit "$rc"
