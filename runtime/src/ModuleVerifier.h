//===- ModuleVerifier.h - Verify a module file before use -------*- C++ -*-===//
//
// The header's ranges, then the integrity checks (Integrity.h: a signature
// with trusted keys, the metadata digest), then two layers, both always on:
// the FlatBuffers structural verifier (bounded depth and table count), then
// a semantic validator that checks every index, offset, size, shape,
// alignment and launch bound with overflow-checked 64-bit arithmetic; last
// the segments' digests. Nothing of a module is used before all pass.
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

/// What a load checks beyond the always-on checks (Integrity.h).
struct VerifyOptions {
  /// Check the weight segments' digests (the executables' always are).
  bool verifyWeights = true;
  /// Trusted Ed25519 public keys, 32 bytes each; none: no signature check.
  const uint8_t *keys = nullptr;
  uint32_t keyCount = 0;
};

/// Verifies the `size` bytes at `data` (a whole module file). `data` must
/// stay valid while `out` is used.
vmoe_status_t verifyModule(const uint8_t *data, uint64_t size,
                           const VerifyOptions &options, VerifiedModule *out,
                           vmoe_message_t *message);

const char *dtypeName(uint32_t dtype);
uint64_t dtypeSize(uint32_t dtype);

} // namespace vmoe

#endif // VMOE_RUNTIME_MODULEVERIFIER_H
