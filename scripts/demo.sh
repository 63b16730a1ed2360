#!/usr/bin/env bash
# The first command on a fresh Debian/Ubuntu machine: installs and starts what grading
# needs (Python venv, Docker, the autograder base image), then runs `greengrader demo`,
# which grades the shipped examples and prints their scores and carbon figures.
#   scripts/demo.sh [greengrader demo options]
# Installing needs root: run it as root or as a user with sudo. Nothing here touches a
# configured GreenGrader database: the demo uses one of its own (see docs/operations.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

# 1. Python environment: the full test environment if scripts/test.sh made one, else the core.
if [ -f .venv/.greengrader-installed ] && [ ! pyproject.toml -nt .venv/.greengrader-installed ]; then
  export PATH="$PWD/.venv/bin:$PATH"
else
  ensure_venv . .venv/.greengrader-installed-core
fi

# 2. Docker daemon (installs docker.io and starts dockerd when missing).
ensure_docker

# 3. The autograder base image (debootstrap, one to two minutes, once).
base_image="${GREENGRADER_BASE_IMAGE:-greengrader/autograder-base:bookworm}"
if ! docker image inspect "$base_image" >/dev/null 2>&1; then
  log "building the autograder base image $base_image (debootstrap, one to two minutes, once)"
  as_root scripts/build-base-image.sh "$base_image"
fi

# 4. The demo itself.
log "greengrader demo: ingest, schedule and grade the examples"
exec greengrader demo "$@"
