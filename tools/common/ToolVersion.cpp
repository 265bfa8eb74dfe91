//===- ToolVersion.cpp - the first line of the tools' --version -----------===//
//
// Alone in its file: vmoe/revision.h changes with every commit, and only this
// file recompiles then.
//
//===----------------------------------------------------------------------===//

#include "ToolSupport.h"

#include "vmoe/revision.h"
#include "vmoe/version.h"

namespace vmoe::tools {

std::string versionLine(const char *tool) {
  return std::string(tool) + " " + VMOE_VERSION_STRING + " (git " +
         VMOE_GIT_REVISION + ")";
}

} // namespace vmoe::tools
