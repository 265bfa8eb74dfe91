//===- BuildVersion.cpp - the version the writer records ------------------===//
//
// Alone in its file: vmoe/revision.h changes with every commit, and only this
// file recompiles then.
//
//===----------------------------------------------------------------------===//

#include "vmoe/revision.h"
#include "vmoe/version.h"
#include "vmoe/writer/ModuleWriter.h"

namespace vmoe::writer {

const char *buildVersion() { return VMOE_VERSION_STRING; }

const char *buildRevision() { return VMOE_GIT_REVISION; }

} // namespace vmoe::writer
