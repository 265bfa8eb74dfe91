#!/usr/bin/env bash
# The main job on the bundled example: set up and build, compile
# examples/tiny-vmoe.mlir (deterministic random weights) into a module, and
# run it at several capacity factors with and without Batch Prioritized
# Routing, printing the classes and what routing did.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build_dir=${VMOE_BUILD_DIR:-build}
module="$build_dir/tiny-vmoe.vmoe"
"$build_dir/bin/vmoe-compile" examples/tiny-vmoe.mlir --random-weights=1 \
  --max-capacity-factor=2.0 -o "$module"
"$build_dir/bin/vmoe-run" "$module" --info
for cf in 2.0 1.05 0.5 0.25; do
  for bpr in on off; do
    echo "== capacity factor $cf, BPR $bpr"
    "$build_dir/bin/vmoe-run" "$module" --capacity-factor "$cf" --bpr "$bpr" \
      --top 3 --repeat 20
  done
done
