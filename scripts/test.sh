#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs every test: lit and
# GoogleTest through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build_dir=${VMOE_BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
