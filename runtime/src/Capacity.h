//===- Capacity.h - The vmoe expert-capacity rule ---------------*- C++ -*-===//
#ifndef VMOE_RUNTIME_CAPACITY_H
#define VMOE_RUNTIME_CAPACITY_H

#include "vmoe/runtime.h"

#include <cstdint>

namespace vmoe {

/// C = roundup4(ceil(groupSize * k * capacityFactor / numExperts)), computed
/// exactly as google-research/vmoe does (IEEE double, left to right).
vmoe_status_t computeCapacity(uint64_t groupSize, uint32_t k,
                              uint32_t numExperts, double capacityFactor,
                              uint64_t *capacity, vmoe_message_t *message);

} // namespace vmoe

#endif // VMOE_RUNTIME_CAPACITY_H
