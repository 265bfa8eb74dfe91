# Cross-compiles the vmoe runtime and vmoe-run for 64-bit Arm Linux
# (aarch64-linux-gnu) with clang and lld, against Debian's cross C/C++
# runtime (libc6-dev-arm64-cross, libstdc++-12-dev-arm64-cross,
# libgcc-12-dev-arm64-cross, installed under /usr/aarch64-linux-gnu).
# Only a runtime build makes sense here (the compiler needs MLIR for the
# build machine):
#
#   cmake -G Ninja -S . -B build-aarch64 \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#     -DVMOE_ENABLE_COMPILER=OFF -DVMOE_BUILD_TESTS=OFF
#   cmake --build build-aarch64 --target vmoe-run
#
# clang finds the cross libc and libstdc++ through the cross GCC
# installation those packages lay out (/usr/lib/gcc-cross); no --sysroot.
# Set VMOE_CROSS_CC / VMOE_CROSS_CXX (cache variables) for other clang
# binaries.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(VMOE_CROSS_TRIPLE aarch64-linux-gnu)
# Where Debian's cross packages put the aarch64 headers and libraries.
set(VMOE_AARCH64_SYSROOT /usr/aarch64-linux-gnu)

find_program(VMOE_CROSS_CC NAMES clang-22 clang REQUIRED)
find_program(VMOE_CROSS_CXX NAMES clang++-22 clang++ REQUIRED)
set(CMAKE_C_COMPILER ${VMOE_CROSS_CC})
set(CMAKE_CXX_COMPILER ${VMOE_CROSS_CXX})
set(CMAKE_C_COMPILER_TARGET ${VMOE_CROSS_TRIPLE})
set(CMAKE_CXX_COMPILER_TARGET ${VMOE_CROSS_TRIPLE})

# lld links for any target; the system ld is the build machine's.
find_program(VMOE_CROSS_LLD NAMES ld.lld-22 ld.lld REQUIRED)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-fuse-ld=${VMOE_CROSS_LLD}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-fuse-ld=${VMOE_CROSS_LLD}")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-fuse-ld=${VMOE_CROSS_LLD}")

# Libraries and headers come from the cross sysroot only; programs (flatc)
# and CMake packages of header-only libraries (FlatBuffers) from the build
# machine.
set(CMAKE_FIND_ROOT_PATH ${VMOE_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# FlatBuffers is used header-only (the runtime links no libflatbuffers), so
# the build machine's package serves: its CMake files sit under the build
# machine's multiarch directory, which the aarch64 search does not visit.
if(NOT FlatBuffers_DIR)
  file(GLOB _vmoe_flatbuffers_dirs
       /usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu/cmake/flatbuffers
       /usr/lib/cmake/flatbuffers /usr/local/lib/cmake/flatbuffers)
  if(_vmoe_flatbuffers_dirs)
    list(GET _vmoe_flatbuffers_dirs 0 _vmoe_flatbuffers_dir)
    set(FlatBuffers_DIR ${_vmoe_flatbuffers_dir} CACHE PATH
        "FlatBuffers CMake package (header-only use)")
  endif()
endif()

# Run aarch64 programs (try_run, tests) through qemu-user when it is there.
find_program(VMOE_QEMU_AARCH64 qemu-aarch64)
if(VMOE_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${VMOE_QEMU_AARCH64} -L ${VMOE_AARCH64_SYSROOT})
endif()
