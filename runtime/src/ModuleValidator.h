//===- ModuleValidator.h - The semantic checks of a module ------*- C++ -*-===//
//
// The second layer of verifyModule: after the FlatBuffers verifier, every
// index, offset, size, shape, alignment and launch bound is checked with
// overflow-checked 64-bit arithmetic. The checks of the module's structure
// (version, arena, segments, signature, constants, executables) are in
// ModuleValidator.cpp; those of the schedule (kernels, MoE layers,
// dispatches and their bindings) in ModuleValidatorSchedule.cpp; those of an
// expert shard and its collective steps in ModuleValidatorShards.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_MODULEVALIDATOR_H
#define VMOE_RUNTIME_MODULEVALIDATOR_H

#include "ModuleVerifier.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace vmoe {
namespace validate {

using ull = unsigned long long;

/// Every binding offset is a multiple of this (the compiler's buffers and
/// the segments are at least this aligned).
constexpr uint32_t kBindingAlignment = 64;

inline const char *kindName(fb::BufferKind kind) {
  switch (kind) {
  case fb::BufferKind::Arena:
    return "arena";
  case fb::BufferKind::Constant:
    return "constant";
  case fb::BufferKind::Input:
    return "input";
  case fb::BufferKind::Output:
    return "output";
  }
  return "unknown";
}

inline const char *str(const flatbuffers::String *s) {
  return s ? s->c_str() : "";
}

/// FlatBuffers 2.0 verifies a vector's length prefix but not the alignment of
/// its elements; 8-byte elements (int64 dims, Segment structs) need it.
template <typename T> bool alignedVector(const flatbuffers::Vector<T> *v) {
  using Element = typename std::remove_pointer<T>::type;
  return !v || reinterpret_cast<uintptr_t>(v->Data()) % alignof(Element) == 0;
}

struct Range {
  uint64_t begin;
  uint64_t end;
  uint32_t index;
};

/// Sorts `ranges` by start and reports the first overlapping pair.
inline bool findOverlap(std::vector<Range> &ranges, Range *a, Range *b) {
  std::sort(ranges.begin(), ranges.end(), [](const Range &x, const Range &y) {
    return x.begin != y.begin ? x.begin < y.begin : x.index < y.index;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      *a = ranges[i - 1];
      *b = ranges[i];
      return true;
    }
  }
  return false;
}

/// True when [begin, end) intersects one of `sorted` (disjoint, sorted).
inline const Range *findIntersecting(const std::vector<Range> &sorted,
                                     uint64_t begin, uint64_t end) {
  if (begin == end)
    return nullptr;
  auto it = std::upper_bound(
      sorted.begin(), sorted.end(), begin,
      [](uint64_t value, const Range &r) { return value < r.end; });
  if (it != sorted.end() && it->begin < end)
    return &*it;
  return nullptr;
}

class Validator {
public:
  Validator(const fb::Module &root, const vmoe_module_header_t &header,
            const uint8_t *segmentBase, VerifiedModule *out,
            vmoe_message_t *message)
      : root(root), header(header), segmentBase(segmentBase), out(out),
        message(message) {}

  vmoe_status_t run() {
    vmoe_status_t s;
    if ((s = checkVersion()) || (s = checkArena()) || (s = checkSegments()) ||
        (s = checkSignature()) || (s = checkConstants()) ||
        (s = checkExecutables()) || (s = checkKernels()) ||
        (s = checkMoeLayers()) || (s = checkExpertShard()) ||
        (s = checkDispatches()))
      return s;
    return VMOE_STATUS_OK;
  }

private:
  vmoe_status_t invalid(const char *format, ...)
      __attribute__((format(printf, 2, 3)));

  // Structure (ModuleValidator.cpp).
  vmoe_status_t checkVersion();
  vmoe_status_t checkArena();
  vmoe_status_t checkSegments();
  vmoe_status_t checkSegmentIndex(const char *what, uint32_t owner,
                                  uint64_t segment);
  vmoe_status_t checkTensors(
      const char *what,
      const flatbuffers::Vector<flatbuffers::Offset<fb::TensorSpec>> *tensors,
      int64_t maxBatch, std::vector<uint64_t> &itemBytes);
  vmoe_status_t checkSignature();
  vmoe_status_t checkConstants();
  vmoe_status_t checkExecutables();

  // Schedule (ModuleValidatorSchedule.cpp).
  vmoe_status_t checkKernels();
  vmoe_status_t checkBinding(uint32_t d, uint32_t b,
                             const fb::Binding *binding);
  vmoe_status_t checkBindingAlignment(uint32_t d, uint32_t b,
                                      const fb::Binding *binding);
  vmoe_status_t checkConstantNotWritten(uint32_t d, uint32_t b, uint32_t k,
                                        const fb::Binding *binding);
  vmoe_status_t checkDispatches();
  vmoe_status_t checkStatsBuffer(uint32_t i, const char *what, uint64_t offset,
                                 uint64_t count);
  vmoe_status_t checkMoeLayers();
  /// MoE layer i's routing kind, capacity factors and capacity rule.
  vmoe_status_t checkCapacityRule(uint32_t i, const fb::MoeLayer *l);

  // Expert shards (ModuleValidatorShards.cpp).
  vmoe_status_t checkExpertShard();
  vmoe_status_t checkCollective(uint32_t d, const fb::Dispatch *dispatch);
  vmoe_status_t checkCollectiveRegion(uint32_t d, const char *what,
                                      uint64_t offset, uint64_t bytes);

  fb::ExecutableFormat executableFormat(uint32_t index) const {
    return root.executables()->Get(index)->format();
  }
  uint64_t tensorBytes(uint64_t itemBytes, const fb::TensorSpec *t) const {
    // Cannot overflow: checkTensors checked the product.
    return t->batch_dim() >= 0 ? itemBytes * static_cast<uint64_t>(maxBatch)
                               : itemBytes;
  }

  const fb::Module &root;
  const vmoe_module_header_t &header;
  const uint8_t *segmentBase;
  VerifiedModule *out;
  vmoe_message_t *message;
  uint64_t arenaSize = 0;
  int64_t maxBatch = 1;
  std::vector<Range> arenaConstants; // sorted once checkConstants is done
};

} // namespace validate
} // namespace vmoe

#endif // VMOE_RUNTIME_MODULEVALIDATOR_H
