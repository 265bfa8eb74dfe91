# Strips a copy of each file in FILES and reports its size; fails when one
# exceeds LIMIT bytes. Run by the runtime.size test.
foreach(file IN LISTS FILES)
  get_filename_component(name ${file} NAME)
  set(copy ${OUT_DIR}/${name}.stripped)
  file(COPY_FILE ${file} ${copy})
  execute_process(COMMAND ${STRIP} --strip-all ${copy} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "strip failed on ${copy}")
  endif()
  file(SIZE ${copy} size)
  math(EXPR kib "${size} / 1024")
  message(STATUS "stripped ${name}: ${size} bytes (${kib} KiB), limit ${LIMIT}")
  if(size GREATER LIMIT)
    message(FATAL_ERROR "${name} is ${size} bytes stripped, over the "
                        "${LIMIT}-byte budget of the runtime core")
  endif()
endforeach()
