#!/usr/bin/env bash
# Nothing to install: the base image has python3.
set -euo pipefail
mkdir -p /autograder/results
