# Use ccache when it is installed. Precompiled headers need the sloppiness
# settings below, or ccache never hits on a TU that uses a PCH.
find_program(VMOE_CCACHE ccache)
if(VMOE_CCACHE)
  set(_vmoe_launcher ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      CCACHE_BASEDIR=${PROJECT_SOURCE_DIR} ${VMOE_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${_vmoe_launcher})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_vmoe_launcher})
endif()
