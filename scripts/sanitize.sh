#!/usr/bin/env bash
# Runs the test suite under sanitizers (scripts/setup.sh installs what they
# need; clang-22's runtimes come with libclang-rt-22-dev).
#
#   scripts/sanitize.sh [asan|tsan|all]     (default: all)
#
# asan: the whole project with AddressSanitizer + UndefinedBehaviorSanitizer
#       (stopping at the first report) and the libFuzzer targets, in
#       build-asan/ (VMOE_ASAN_BUILD_DIR); runs every ctest test, including a
#       few seconds of each fuzz target. Debian's libMLIR stays uninstrumented.
# tsan: the runtime alone (-DVMOE_ENABLE_COMPILER=OFF) with ThreadSanitizer,
#       in build-tsan/ (VMOE_TSAN_BUILD_DIR); runs the runtime tests, among
#       them the thread-pool, concurrent-session and load tests, and the
#       writer tests (which load what they write).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
case "$mode" in
  asan|tsan|all) ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan|all]" >&2; exit 2 ;;
esac
jobs=${VMOE_JOBS:-$(nproc)}

configure() { # DIR ARGS...
  local dir=$1
  shift
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -G Ninja -S . -B "$dir" \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 "$@"
  fi
}

# Stop at the first report, with a stack; LeakSanitizer stays on.
# allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons its slabs when its
# header is compiled with ASan (our attribute storage, e.g. #vmoe.moe_layer),
# and Debian's uninstrumented libMLIR then allocates from the same slab
# without unpoisoning: a false use-after-poison. Nothing of ours poisons
# memory by hand, so no real check is lost.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:allow_user_poisoning=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

if [ "$mode" = asan ] || [ "$mode" = all ]; then
  dir=${VMOE_ASAN_BUILD_DIR:-build-asan}
  configure "$dir" -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DVMOE_SANITIZE=address -DVMOE_BUILD_FUZZERS=ON
  cmake --build "$dir" -j "$jobs"
  echo "sanitize: ASan + UBSan, every test"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
fi

if [ "$mode" = tsan ] || [ "$mode" = all ]; then
  dir=${VMOE_TSAN_BUILD_DIR:-build-tsan}
  configure "$dir" -DVMOE_ENABLE_COMPILER=OFF -DVMOE_SANITIZE=thread
  cmake --build "$dir" -j "$jobs" --target vmoe_runtime_tests vmoe_writer_tests
  echo "sanitize: TSan, the runtime and writer tests"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" -R '^(runtime|writer)\.'
fi
