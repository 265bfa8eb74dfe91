# vmoe_embed_lines(TEXT_FILE OUTPUT COUNT): writes OUTPUT with each line of
# TEXT_FILE as a C string literal followed by a comma (for an initializer
# list), at configure time; a change of TEXT_FILE reconfigures. Fails unless
# the file has exactly COUNT non-empty lines.
function(vmoe_embed_lines text_file output count)
  file(STRINGS ${text_file} lines)
  list(LENGTH lines n)
  if(NOT n EQUAL count)
    message(FATAL_ERROR "${text_file}: ${n} lines, expected ${count}")
  endif()
  set(text "// Generated from ${text_file} by cmake/VmoeEmbedLines.cmake.\n")
  foreach(line IN LISTS lines)
    string(REPLACE "\\" "\\\\" line "${line}")
    string(REPLACE "\"" "\\\"" line "${line}")
    string(APPEND text "\"${line}\",\n")
  endforeach()
  # Rewritten only when its text changes: no rebuild on every configure.
  set(old "")
  if(EXISTS ${output})
    file(READ ${output} old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE ${output} "${text}")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${text_file})
endfunction()
