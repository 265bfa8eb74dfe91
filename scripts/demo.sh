#!/usr/bin/env bash
# The main job on the bundled example: set up and build, then compile
# examples/tiny-vmoe.mlir through the vmoe pipeline, printing the IR after
# capacity inference and decomposition.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build_dir=${VMOE_BUILD_DIR:-build}
"$build_dir/bin/vmoe-opt" examples/tiny-vmoe.mlir \
  --vmoe-infer-capacity --vmoe-decompose --canonicalize
