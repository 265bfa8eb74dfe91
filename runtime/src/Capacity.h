//===- Capacity.h - The vmoe expert-capacity rule ---------------*- C++ -*-===//
#ifndef VMOE_RUNTIME_CAPACITY_H
#define VMOE_RUNTIME_CAPACITY_H

#include "vmoe/runtime.h"

#include <cstdint>

namespace vmoe {

namespace fb {
struct MoeLayer;
} // namespace fb

/// vmoe's compute_capacity: v = numTokens * capacityFactor / numExperts in
/// IEEE double, left to right; ceil(v), or Python's half-to-even round(v)
/// with `round`; an error below 1; then up to a multiple of `multipleOf`.
vmoe_status_t computeCapacityRule(uint64_t numTokens, uint32_t numExperts,
                                  double capacityFactor, uint32_t multipleOf,
                                  bool round, uint64_t *capacity,
                                  vmoe_message_t *message);

/// C = roundup4(ceil(groupSize * k * capacityFactor / numExperts)), computed
/// exactly as google-research/vmoe does (IEEE double, left to right).
vmoe_status_t computeCapacity(uint64_t groupSize, uint32_t k,
                              uint32_t numExperts, double capacityFactor,
                              uint64_t *capacity, vmoe_message_t *message);

/// The capacity of MoE layer `layer` at `capacityFactor` with `k` experts
/// per token: its own rule (multiple, rounding) over S * k routed tokens, or
/// S for expert choice.
vmoe_status_t layerCapacity(const fb::MoeLayer *layer, double capacityFactor,
                            uint32_t k, uint64_t *capacity,
                            vmoe_message_t *message);

} // namespace vmoe

#endif // VMOE_RUNTIME_CAPACITY_H
