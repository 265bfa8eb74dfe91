//===- MemoryPlanner.h - Assign buffers offsets in one arena ----*- C++ -*-===//
//
// Every intermediate buffer of a schedule gets an offset in one arena; two
// buffers share memory only if their lifetimes do not overlap. A lifetime
// is the inclusive range [firstUse, lastUse] of dispatch indices (a buffer
// written by dispatch 3 and last read by dispatch 7 is [3, 7]); buffers
// whose ranges share an index are live at the same time.
//
// Greedy by size (TFLite's and ExecuTorch's choice): largest buffers first,
// each at the lowest aligned offset that clears every already placed buffer
// it is live with. Deterministic for a given input.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_WRITER_MEMORYPLANNER_H
#define VMOE_WRITER_MEMORYPLANNER_H

#include <cstdint>
#include <string>
#include <vector>

namespace vmoe {
namespace writer {

struct BufferRequest {
  uint64_t size = 0;
  /// A power of two.
  uint64_t alignment = 64;
  uint32_t firstUse = 0;
  uint32_t lastUse = 0;
};

struct MemoryPlan {
  /// Per request, in request order.
  std::vector<uint64_t> offsets;
  /// The arena size: the end of the highest buffer.
  uint64_t arenaSize = 0;
  /// The largest alignment among the buffers (at least the base alignment).
  uint64_t arenaAlignment = 1;
};

/// Plans `requests`. Returns false with *error for an invalid request
/// (alignment not a power of two, firstUse > lastUse) or a size overflow.
bool planMemory(const std::vector<BufferRequest> &requests, MemoryPlan &plan,
                std::string *error, uint64_t baseAlignment = 64);

/// Checks a plan: every offset aligned, the arena holds every buffer, and no
/// two buffers that are live together overlap. For tests and debug builds.
bool verifyMemoryPlan(const std::vector<BufferRequest> &requests,
                      const MemoryPlan &plan, std::string *error);

} // namespace writer
} // namespace vmoe

#endif // VMOE_WRITER_MEMORYPLANNER_H
