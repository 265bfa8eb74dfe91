#!/usr/bin/env bash
# Fuzzes the untrusted-input parsers with libFuzzer (tests/fuzz).
#
#   scripts/fuzz.sh TARGET|all SECONDS
#
# TARGET is one of: module_load module_run module_schema checkpoint npz
# safetensors config image. module_schema mutates a module's metadata through
# its schema; its seeds include a module compiled from examples/tiny-vmoe.mlir
# when a vmoe-compile is at hand ($VMOE_COMPILE, or build/bin/vmoe-compile). Builds the fuzz targets (clang, ASan + UBSan, runtime-only tree) into
# build-fuzz/ (VMOE_FUZZ_BUILD_DIR), then runs each target for SECONDS, one
# at a time, at the lowest CPU priority. The corpus grows in
# build-fuzz/tests/fuzz/corpus/TARGET; a crashing input is written to
# build-fuzz/fuzz-findings/ and the script exits non-zero. Keep such inputs
# as regression tests: copy them to tests/fuzz/regressions/TARGET/ (replayed
# by the fuzz.TARGET.replay test of every build).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(module_load module_run module_schema checkpoint npz safetensors
             config image)
usage() {
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS" >&2
  echo "targets: ${all_targets[*]}" >&2
  exit 2
}
[ "$#" -eq 2 ] || usage
if [ "$1" = all ]; then
  targets=("${all_targets[@]}")
else
  case " ${all_targets[*]} " in
    *" $1 "*) targets=("$1") ;;
    *) echo "fuzz: unknown target '$1'" >&2; usage ;;
  esac
fi
case "$2" in
  ''|*[!0-9]*|0) echo "fuzz: SECONDS must be a positive integer, not '$2'" >&2
                 usage ;;
esac
seconds=$2

build_dir=${VMOE_FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -G Ninja -S . -B "$build_dir" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DVMOE_ENABLE_COMPILER=OFF -DVMOE_BUILD_FUZZERS=ON
fi
nice -n 10 cmake --build "$build_dir" -j "${VMOE_JOBS:-2}" --target \
  vmoe_fuzz_seeds $(printf 'vmoe_fuzz_%s ' "${targets[@]}")

findings="$build_dir/fuzz-findings"
mkdir -p "$findings"
status=0
summary=()
for t in "${targets[@]}"; do
  corpus="$build_dir/tests/fuzz/corpus/$t"
  inputs=("$corpus" "$build_dir/tests/fuzz/seeds/$t")
  [ -d "tests/fuzz/regressions/$t" ] && inputs+=("tests/fuzz/regressions/$t")
  mkdir -p "$corpus"
  compiler=${VMOE_COMPILE:-build/bin/vmoe-compile}
  if [ "$t" = module_schema ] && [ -x "$compiler" ] &&
     [ ! -f "$corpus/tiny-vmoe.vmoe" ]; then
    "$compiler" examples/tiny-vmoe.mlir --random-weights=1 \
      -o "$corpus/tiny-vmoe.vmoe" >/dev/null
  fi
  log="$build_dir/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s (log: $log)"
  rc=0
  nice -n 19 "$build_dir/bin/vmoe_fuzz_$t" -max_total_time="$seconds" \
    -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$findings/$t-" "${inputs[@]}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$t: FINDING after ${execs:-?} runs (exit $rc): see $log and $findings/")
    tail -n 40 "$log" >&2
  else
    summary+=("$t: ${seconds}s, ${execs:-?} runs, coverage ${cov:-?} edges, no finding")
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
