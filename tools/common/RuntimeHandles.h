//===- RuntimeHandles.h - the runtime's C API in the tools ------*- C++ -*-===//
//
// Owning handles for modules and sessions (released on every path out), and
// the calls vmoe-run and vmoe-bench both make: --version, loading a module,
// creating a session, reporting a failed call, reading the per-dispatch
// profile.
// Header-only: the tools that include it link the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_RUNTIMEHANDLES_H
#define VMOE_TOOLS_RUNTIMEHANDLES_H

#include "ToolSupport.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace vmoe::tools {

struct ModuleRelease {
  void operator()(vmoe_module_t *module) const { vmoe_module_release(module); }
};
struct SessionDestroy {
  void operator()(vmoe_session_t *session) const {
    vmoe_session_destroy(session);
  }
};
using ModuleHandle = std::unique_ptr<vmoe_module_t, ModuleRelease>;
using SessionHandle = std::unique_ptr<vmoe_session_t, SessionDestroy>;

/// --version of the tools that run modules: theirs, then the runtime's
/// version and the module format it reads.
inline void printVersion(const char *tool) {
  uint32_t major = 0, minor = 0;
  vmoe_runtime_format_version(&major, &minor);
  std::printf("%s\nruntime %s, module format %u.%u\n",
              versionLine(tool).c_str(), vmoe_runtime_version(), major, minor);
}

/// "STATUS: message": how the tools report a failed runtime call.
inline std::string statusMessage(vmoe_status_t status,
                                 const vmoe_message_t &message) {
  return std::string(vmoe_status_name(status)) + ": " + message.text;
}

/// The module file at `path`, or null with `error` set. `options` null: the
/// defaults.
inline ModuleHandle
loadModule(const std::string &path, std::string &error,
           const vmoe_module_load_options_t *options = nullptr) {
  vmoe_message_t message;
  vmoe_module_t *module = nullptr;
  if (vmoe_status_t status =
          vmoe_module_load_file_ex(path.c_str(), options, &module, &message)) {
    error = statusMessage(status, message);
    return nullptr;
  }
  return ModuleHandle(module);
}

/// A session on `module`, or null with `error` set.
inline SessionHandle createSession(vmoe_module_t *module,
                                   const vmoe_session_options_t &options,
                                   std::string &error) {
  vmoe_message_t message;
  vmoe_session_t *session = nullptr;
  if (vmoe_status_t status =
          vmoe_session_create(module, &options, &session, &message)) {
    error = statusMessage(status, message);
    return nullptr;
  }
  return SessionHandle(session);
}

/// Wall time of every dispatch, summed over a profiling session's runs.
struct DispatchProfile {
  uint64_t runs = 0;
  std::vector<uint64_t> nanoseconds; // per dispatch

  /// Mean milliseconds per run of dispatch `d`.
  double meanMs(uint32_t d) const { return nanoseconds[d] / 1e6 / runs; }
};

/// The profile of a session created with `profile` set; false when there is
/// none or no run finished.
inline bool readProfile(const vmoe_session_t *session, uint32_t dispatchCount,
                        DispatchProfile &out) {
  vmoe_message_t message;
  out.nanoseconds.assign(dispatchCount, 0);
  out.runs = 0;
  return vmoe_session_profile(session, out.nanoseconds.data(), dispatchCount,
                              &out.runs, &message) == VMOE_STATUS_OK &&
         out.runs > 0;
}

} // namespace vmoe::tools

#endif // VMOE_TOOLS_RUNTIMEHANDLES_H
