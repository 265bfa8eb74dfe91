#!/usr/bin/env bash
# Installs what vmoe needs on Debian 12 (idempotent), then configures and
# builds the project into build/. Usage: scripts/setup.sh [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: MLIR/LLVM 22 (compiler), FlatBuffers (module format),
# GoogleTest and lit/FileCheck (tests), ninja + ccache + clang (fast builds),
# libzstd-dev (LLVM's exported CMake targets reference zstd), libxxhash-dev
# (module digests, header-only), libsodium-dev (module signatures),
# nlohmann-json3-dev (config JSON, header-only), the
# aarch64 C/C++ runtime and qemu-user (aarch64 modules are tested under
# qemu-aarch64), pkg-config and make (the C example's build from the
# installed runtime package), python3-dev + pybind11 (the Python package)
# and pytest (its tests), PyTorch with OpenBLAS (python/vmoe_torch.py, the
# benchmarks' peer, and its tests; without libopenblas0-pthread Debian's
# PyTorch falls back to the slow reference BLAS), OpenMPI (expert
# parallelism across processes: the vmoe_mpi library and its mpirun tests).
packages=(
  cmake ninja-build ccache clang-22 lld-22
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools libzstd-dev
  flatbuffers-compiler libflatbuffers-dev libgtest-dev zlib1g-dev
  libxxhash-dev libsodium-dev pkg-config make
  libmsgpack-cxx-dev nlohmann-json3-dev # checkpoint, safetensors, config readers
  libspng-dev libturbojpeg0-dev # PNG and JPEG input of vmoe-run
  python3 python3-numpy dataset-fashion-mnist
  python3-dev pybind11-dev python3-pybind11 python3-pytest
  python3-torch libopenblas0-pthread
  libopenmpi-dev openmpi-bin # expert parallelism over MPI
  libclang-rt-22-dev # sanitizer and libFuzzer runtimes (scripts/sanitize.sh)
  qemu-user libc6-dev-arm64-cross libstdc++-12-dev-arm64-cross
  libgcc-12-dev-arm64-cross
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
fi

# clang + precompiled headers build the MLIR-heavy translation units about
# 3x faster than g++ on a 2-core machine.
build_dir=${VMOE_BUILD_DIR:-build}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -G Ninja -S . -B "$build_dir" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir "$@"
elif [ "$#" -gt 0 ]; then
  cmake "$build_dir" "$@"
fi
cmake --build "$build_dir" -j "${VMOE_JOBS:-$(nproc)}"
