//===- Version.cpp - the runtime's version and a module's compiler --------===//

#include "vmoe/version.h"
#include "Module.h"
#include "vmoe/runtime.h"

namespace {

const vmoe::fb::CompilerInfo *compilerInfo(const vmoe_module_t *handle) {
  if (!handle)
    return nullptr;
  const vmoe::fb::ModelMetadata *meta =
      reinterpret_cast<const vmoe::Module *>(handle)->root().metadata();
  return meta ? meta->compiler() : nullptr;
}

const char *str(const flatbuffers::String *s) { return s ? s->c_str() : ""; }

} // namespace

extern "C" {

const char *vmoe_runtime_version(void) { return VMOE_VERSION_STRING; }

const char *vmoe_module_compiler_version(const vmoe_module_t *module) {
  const vmoe::fb::CompilerInfo *info = compilerInfo(module);
  return info ? str(info->version()) : "";
}

const char *vmoe_module_compiler_revision(const vmoe_module_t *module) {
  const vmoe::fb::CompilerInfo *info = compilerInfo(module);
  return info ? str(info->revision()) : "";
}

} // extern "C"
