# One version for everything (the compiler, the runtime, the tools, the
# packages): project(vmoe VERSION ...) in the top-level CMakeLists.txt.
#
#   vmoe/version.h   VMOE_VERSION_MAJOR/MINOR/PATCH and VMOE_VERSION_STRING,
#                    configured once; installed with the runtime's headers.
#   vmoe/revision.h  VMOE_GIT_REVISION, the source tree's git revision, read
#                    at every build and rewritten only when it changes, so a
#                    commit needs no reconfigure and rebuilds only the few
#                    files that include it. Without git (a source archive):
#                    -DVMOE_GIT_REVISION=... or "unknown".
# Target vmoe_version (INTERFACE) puts both on the include path.

set(vmoe_version_dir ${PROJECT_BINARY_DIR}/version)
configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in
  ${vmoe_version_dir}/vmoe/version.h @ONLY)

find_package(Git QUIET)
set(VMOE_GIT_REVISION "" CACHE STRING
  "Git revision recorded in modules and --version (empty: ask git)")
add_custom_target(vmoe_revision_gen
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -DGIT=${GIT_EXECUTABLE} -DREVISION=${VMOE_GIT_REVISION}
          -DOUTPUT=${vmoe_version_dir}/vmoe/revision.h
          -P ${CMAKE_CURRENT_LIST_DIR}/VmoeRevision.cmake
  BYPRODUCTS ${vmoe_version_dir}/vmoe/revision.h
  VERBATIM)

add_library(vmoe_version INTERFACE)
target_include_directories(vmoe_version INTERFACE
  $<BUILD_INTERFACE:${vmoe_version_dir}>)
add_dependencies(vmoe_version vmoe_revision_gen)
