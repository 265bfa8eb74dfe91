#!/usr/bin/env bash
# install.c_example (tests/install/CMakeLists.txt): installs the build into a
# prefix and builds examples/c against it four ways, then checks what was
# installed.
#   c_example_test.sh SOURCE_DIR BUILD_DIR WORK_DIR C_COMPILER VERSION GENERATOR
set -euo pipefail
src=$1 build=$2 work=$3 cc=$4 version=$5 generator=$6
prefix=$work/prefix
fail() { echo "install.c_example: FAILED: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"

# A small module to run.
"$build/bin/vmoe-compile" "$src/examples/tiny-vmoe.mlir" --random-weights=1 \
  -o "$work/tiny.vmoe"

# What the install holds: the runtime's package and the tools; none of the
# compiler's internal libraries.
libdir=$(dirname "$(find "$prefix" -name libvmoe_runtime.a)")
for f in bin/vmoe-run bin/vmoe-bench bin/vmoe-compile bin/vmoe-opt \
    include/vmoe/runtime.h include/vmoe/version.h include/vmoe/kernel_abi.h \
    include/vmoe/module_format.h; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
for f in libvmoe_runtime.so pkgconfig/vmoe_runtime.pc \
    cmake/vmoe_runtime/vmoe_runtimeConfig.cmake \
    cmake/vmoe_runtime/vmoe_runtimeConfigVersion.cmake; do
  [ -e "$libdir/$f" ] || fail "$f not installed in $libdir"
done
stray=$(find "$prefix" -name '*.a' ! -name libvmoe_runtime.a)
[ -z "$stray" ] || fail "internal libraries installed: $stray"
# The shared library exports the C API and nothing else.
exports=$(nm -D --defined-only "$libdir/libvmoe_runtime.so" |
  awk '{print $3}' | grep -v '^vmoe_' || true)
[ -z "$exports" ] || fail "libvmoe_runtime.so exports more than vmoe_*: $exports"

# The installed tools run and say the project's version.
for tool in vmoe-run vmoe-bench vmoe-compile vmoe-opt; do
  "$prefix/bin/$tool" --version | grep -q "^$tool $version (git " ||
    fail "$tool --version does not say $version"
done

expect() { # OUTPUT_FILE: what every build of the example prints
  grep -q "^vmoe runtime $version (compiled against $version)$" "$1" &&
    grep -q "compiled by vmoe $version$" "$1" &&
    grep -q '^image 1: class [0-9]' "$1" &&
    grep -q '^MoE layer 0: capacity [0-9]*, kept [0-9]* of [0-9]* assignments$' "$1" ||
    { cat "$1"; fail "unexpected output of $1"; }
}

# CMake, from a C-only project: the static library, then the shared one.
for kind in static shared; do
  shared=OFF
  [ "$kind" = shared ] && shared=ON
  cmake -G "$generator" -S "$src/examples/c" -B "$work/$kind" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
    -DVMOE_EXAMPLE_SHARED=$shared > "$work/$kind.configure.log"
  cmake --build "$work/$kind" > "$work/$kind.build.log" ||
    { cat "$work/$kind.build.log"; fail "the $kind CMake build"; }
  "$work/$kind/classify" "$work/tiny.vmoe" > "$work/$kind.out"
  expect "$work/$kind.out"
done
readelf -d "$work/static/classify" | grep -q 'libvmoe_runtime' &&
  fail "the static build links libvmoe_runtime.so"
readelf -d "$work/shared/classify" | grep -q 'NEEDED.*libvmoe_runtime.so' ||
  fail "the shared build does not link libvmoe_runtime.so"
cmp -s "$work/static.out" "$work/shared.out" ||
  fail "the static and shared builds print different results"

# The package's version file: 0.7 is this version's series; another minor
# version is refused (0.x).
major=${version%%.*} rest=${version#*.} minor=${rest%%.*}
mkdir -p "$work/version"
cat > "$work/version/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.20)
project(version_check LANGUAGES C)
find_package(vmoe_runtime $major.$minor REQUIRED)
find_package(vmoe_runtime $major.$((minor + 1)) QUIET)
if(vmoe_runtime_FOUND)
  message(FATAL_ERROR "$major.$((minor + 1)) accepted")
endif()
CMAKE
cmake -G "$generator" -S "$work/version" -B "$work/version/build" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
  > "$work/version.log" 2>&1 || { cat "$work/version.log"; fail "version file"; }

# pkg-config: the example's Makefile (shared library), and the static
# library with what --static lists.
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion vmoe_runtime)" = "$version" ] ||
  fail "pkg-config --modversion is not $version"
mkdir -p "$work/pc" "$work/pc-static"
make -s -C "$work/pc" -f "$src/examples/c/Makefile" VPATH="$src/examples/c" \
  CC="$cc" > "$work/pc.build.log"
"$work/pc/classify" "$work/tiny.vmoe" > "$work/pc.out"
expect "$work/pc.out"
static_libs=$(pkg-config --static --libs vmoe_runtime |
  sed 's/-lvmoe_runtime/-l:libvmoe_runtime.a/')
# shellcheck disable=SC2046,SC2086
"$cc" -std=c99 $(pkg-config --cflags vmoe_runtime) "$src/examples/c/classify.c" \
  $static_libs -o "$work/pc-static/classify"
"$work/pc-static/classify" "$work/tiny.vmoe" > "$work/pc-static.out"
expect "$work/pc-static.out"
cmp -s "$work/static.out" "$work/pc.out" ||
  fail "the pkg-config build prints different results"
echo "install.c_example: passed"
