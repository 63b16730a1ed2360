#!/usr/bin/env bash
# Build the default autograder base image locally (no registry needed): Debian bookworm
# with python3, pip and build-essential, close to Gradescope's Ubuntu base.
# Usage: scripts/build-base-image.sh [TAG]   (idempotent: does nothing if TAG exists)
set -euo pipefail
# shellcheck source=scripts/lib/setup.sh
. "$(dirname "$0")/lib/setup.sh"
tag="${1:-${GREENGRADER_BASE_IMAGE:-greengrader/autograder-base:bookworm}}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap"
  apt_install debootstrap
fi
root="$(mktemp -d /var/tmp/gg-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,build-essential,ca-certificates,coreutils,procps \
  bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 || { tail -30 "$root.log"; exit 1; }
rm -f "$root.log"
# Gradescope-like layout; apt lists kept so setup.sh can apt-get install at build time.
mkdir -p "$root/autograder"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'WORKDIR /autograder' \
  - "$tag" >/dev/null
echo "built base image $tag"
