# Fails when LIBRARY (a runtime library) needs MPI: MPI belongs in vmoe_mpi,
# which a program links besides the runtime (docs/mpi.md).
if(LIBRARY MATCHES "\\.a$")
  execute_process(COMMAND nm -u ${LIBRARY} OUTPUT_VARIABLE symbols
                  RESULT_VARIABLE rc)
  set(what "an undefined ")
else()
  execute_process(COMMAND readelf -d ${LIBRARY} OUTPUT_VARIABLE symbols
                  RESULT_VARIABLE rc)
  set(what "")
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cannot read ${LIBRARY}")
endif()
if(symbols MATCHES "(libmpi[A-Za-z0-9._-]*|[PO]?MPI_[A-Za-z_]+)")
  message(FATAL_ERROR "${LIBRARY} has ${what}${CMAKE_MATCH_0}; the runtime "
                      "must not need MPI")
endif()
message(STATUS "${LIBRARY}: no MPI dependency")
