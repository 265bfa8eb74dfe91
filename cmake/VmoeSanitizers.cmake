# Sanitizer builds and fuzz targets (scripts/sanitize.sh, scripts/fuzz.sh).
#
# VMOE_SANITIZE=address: ASan + UBSan on everything this project compiles,
# stopping at the first report. VMOE_SANITIZE=thread: TSan. Debian's libMLIR
# stays uninstrumented, which both tolerate.
#
# VMOE_BUILD_FUZZERS=ON (clang only) builds the libFuzzer targets of
# tests/fuzz with ASan + UBSan (implied when VMOE_SANITIZE is empty). The
# libFuzzer runtime ships with Debian's clang-22 (libclang-rt-22-dev).
set(VMOE_SANITIZE "" CACHE STRING
  "Sanitizers for every target: empty, 'address' (ASan + UBSan) or 'thread'")
set_property(CACHE VMOE_SANITIZE PROPERTY STRINGS "" address thread)
option(VMOE_BUILD_FUZZERS "Build the libFuzzer targets (clang only)" OFF)

if(VMOE_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "VMOE_BUILD_FUZZERS needs clang (libFuzzer); "
                        "configure with -DCMAKE_CXX_COMPILER=clang++-22")
  endif()
  if(VMOE_SANITIZE STREQUAL "")
    set(VMOE_SANITIZE address CACHE STRING "" FORCE)
  elseif(NOT VMOE_SANITIZE STREQUAL "address")
    message(FATAL_ERROR "VMOE_BUILD_FUZZERS needs VMOE_SANITIZE=address")
  endif()
endif()

if(VMOE_SANITIZE STREQUAL "address")
  set(vmoe_sanitize_flags -fsanitize=address,undefined
      -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(VMOE_SANITIZE STREQUAL "thread")
  set(vmoe_sanitize_flags -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT VMOE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "VMOE_SANITIZE must be empty, 'address' or 'thread', "
                      "not '${VMOE_SANITIZE}'")
endif()
if(vmoe_sanitize_flags)
  add_compile_options(${vmoe_sanitize_flags})
  add_link_options(${vmoe_sanitize_flags})
  # Sanitizer instrumentation makes code larger and slower: the size budget
  # and similar checks see VMOE_SANITIZE to skip themselves.
  message(STATUS "vmoe: sanitizers: ${VMOE_SANITIZE}")
endif()
