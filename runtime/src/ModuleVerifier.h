//===- ModuleVerifier.h - Verify a module file before use -------*- C++ -*-===//
//
// Two layers, both always on: the FlatBuffers structural verifier (bounded
// depth and table count), then a semantic validator that checks every index,
// offset, size, shape, alignment and launch bound with overflow-checked
// 64-bit arithmetic. Nothing of a module is used before both pass.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_MODULEVERIFIER_H
#define VMOE_RUNTIME_MODULEVERIFIER_H

#include "vmoe/module_format.h"
#include "vmoe/module_generated.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <vector>

namespace vmoe {

/// Length of an optional FlatBuffers vector (0 when absent).
template <typename T> uint32_t sizeOf(const flatbuffers::Vector<T> *v) {
  return v ? v->size() : 0;
}

/// Facts about a verified module that the loader and sessions reuse.
struct VerifiedModule {
  vmoe_module_header_t header;
  const fb::Module *root = nullptr;
  const uint8_t *segmentBase = nullptr;
  /// Bytes of one batch item of each input/output (the whole tensor when it
  /// has no batch dim).
  std::vector<uint64_t> inputItemBytes;
  std::vector<uint64_t> outputItemBytes;
  uint64_t maxScratchSize = 0;
};

/// Verifies the `size` bytes at `data` (a whole module file). `data` must
/// stay valid while `out` is used.
vmoe_status_t verifyModule(const uint8_t *data, uint64_t size,
                           VerifiedModule *out, vmoe_message_t *message);

const char *dtypeName(uint32_t dtype);
uint64_t dtypeSize(uint32_t dtype);

} // namespace vmoe

#endif // VMOE_RUNTIME_MODULEVERIFIER_H
