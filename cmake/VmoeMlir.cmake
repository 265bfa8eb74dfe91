# Finds Debian's MLIR/LLVM 22 and sets up the MLIR build helpers for the
# compiler half of the tree. The runtime never includes this file.
if(NOT MLIR_DIR AND EXISTS /usr/lib/llvm-22/lib/cmake/mlir)
  set(MLIR_DIR /usr/lib/llvm-22/lib/cmake/mlir)
endif()
find_package(MLIR REQUIRED CONFIG)
message(STATUS "Using MLIR ${LLVM_PACKAGE_VERSION} from ${MLIR_DIR}")

list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
set(LLVM_RUNTIME_OUTPUT_INTDIR ${PROJECT_BINARY_DIR}/bin)
set(LLVM_LIBRARY_OUTPUT_INTDIR ${PROJECT_BINARY_DIR}/lib)
set(MLIR_BINARY_DIR ${PROJECT_BINARY_DIR})
# MLIRConfig does not set this; mlir_target_link_libraries() reads it to swap
# component libraries for the single libMLIR.so.
set(MLIR_LINK_MLIR_DYLIB ${VMOE_LINK_MLIR_DYLIB})

# The compiler's libraries are internal (their headers are not installed):
# `cmake --install` installs the runtime package and the tools, not them.
set(LLVM_INSTALL_TOOLCHAIN_ONLY ON)

include(TableGen)
include(AddLLVM)
include(AddMLIR)

include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
separate_arguments(_vmoe_llvm_defs NATIVE_COMMAND "${LLVM_DEFINITIONS}")
add_definitions(${_vmoe_llvm_defs})
# Debian's libMLIR is an NDEBUG build: keep statistic layouts identical.
add_definitions(-DNDEBUG)

# Debian ships `lit`, not the `llvm-lit` that LLVMConfig points at.
find_program(VMOE_LIT NAMES lit llvm-lit HINTS ${LLVM_TOOLS_BINARY_DIR} REQUIRED)
find_program(VMOE_FILECHECK FileCheck HINTS ${LLVM_TOOLS_BINARY_DIR} REQUIRED)
set(LLVM_EXTERNAL_LIT ${VMOE_LIT} CACHE STRING "" FORCE)

# vmoe_mlir_pch(target): one precompiled header of the heavy MLIR includes per
# MLIR target; with clang this cuts each TU from ~20 s to ~5 s on 2 cores.
# add_mlir_library compiles through an object library obj.<target>: the
# precompiled header goes there.
function(vmoe_mlir_pch target)
  if(VMOE_ENABLE_PCH)
    set(compiled ${target})
    if(TARGET obj.${target})
      set(compiled obj.${target})
    endif()
    target_precompile_headers(${compiled} PRIVATE
      ${PROJECT_SOURCE_DIR}/compiler/include/vmoe/Support/MlirPch.h)
  endif()
endfunction()
