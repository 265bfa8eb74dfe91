//===- CpuLoader.h - Load and check CPU shared objects ----------*- C++ -*-===//
//
// The CPU loader loads a module's shared object from memory (memfd_create +
// dlopen of /proc/self/fd/N on Linux; a temporary file in $TMPDIR, unlinked
// right after dlopen, where memfd is unavailable) after checking that this
// host can run it: ELF class/machine, the triple's architecture, and every
// CPU feature the executable lists. Each load uses a name that no object
// still loaded holds (dlopen would return that object instead): any number
// of different modules can be loaded at once.
//
// A bare-metal port has no dlopen: there the compiler would emit a static
// library with a table of entry points, linked into the application, and
// the runtime would look kernels up in that table instead.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_CPULOADER_H
#define VMOE_RUNTIME_CPULOADER_H

#include "vmoe/runtime.h"

#include <cstdint>

namespace vmoe {
namespace cpu {

/// Architecture of this build, as in a triple ("x86_64", "aarch64").
const char *hostArchitecture();

/// Whether this host supports `feature` (LLVM spelling without '+', e.g.
/// "avx2", "avx512bf16", "amx-tile"). *known is false for names this runtime
/// cannot check.
bool hostHasFeature(const char *feature, size_t length, bool *known);

/// Checks triple and the comma-separated feature list of executable
/// `index` against this host. UNSUPPORTED with a message naming what is
/// missing.
vmoe_status_t checkTarget(uint32_t index, const char *triple,
                          const char *features, vmoe_message_t *message);

/// Checks that the bytes are an ELF shared object for this host.
vmoe_status_t checkElf(uint32_t index, const uint8_t *data, uint64_t size,
                       vmoe_message_t *message);

enum class LoadMethod {
  Auto,     ///< memfd where available, else a temporary file.
  MemFd,    ///< memfd only.
  TempFile, ///< temporary file only.
};

/// dlopens the shared object in `data`. The bytes are copied; the caller may
/// unmap them afterwards.
vmoe_status_t loadSharedObject(uint32_t index, const uint8_t *data,
                               uint64_t size, LoadMethod method, void **handle,
                               vmoe_message_t *message);

} // namespace cpu
} // namespace vmoe

#endif // VMOE_RUNTIME_CPULOADER_H
