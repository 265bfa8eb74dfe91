# Fails when BINARY (a program built on the runtime) depends on LLVM or MLIR:
# the runtime must stay free of them (architecture non-negotiable 2).
execute_process(COMMAND readelf -d ${BINARY} OUTPUT_VARIABLE dynamic
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf failed on ${BINARY}")
endif()
if(dynamic MATCHES "lib(LLVM|MLIR)[A-Za-z0-9._-]*")
  message(FATAL_ERROR "${BINARY} needs ${CMAKE_MATCH_0}; the runtime must not")
endif()
execute_process(COMMAND nm -C ${BINARY} OUTPUT_VARIABLE symbols)
if(symbols MATCHES "(mlir|llvm)::[A-Za-z_]+")
  message(FATAL_ERROR "${BINARY} contains ${CMAKE_MATCH_0}")
endif()
message(STATUS "${BINARY}: no LLVM or MLIR dependency")
