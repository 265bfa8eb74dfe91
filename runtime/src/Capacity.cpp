//===- Capacity.cpp - The vmoe expert-capacity rule -----------------------===//

#include "Capacity.h"

#include "Diagnostics.h"

#include <cmath>

namespace vmoe {

vmoe_status_t computeCapacity(uint64_t groupSize, uint32_t k,
                              uint32_t numExperts, double capacityFactor,
                              uint64_t *capacity, vmoe_message_t *message) {
  if (!(capacityFactor > 0) || !std::isfinite(capacityFactor))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity factor %s must be a finite number > 0",
                formatDouble(capacityFactor).text);
  if (numExperts == 0 || k == 0 || groupSize == 0)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity needs group size, k and experts >= 1 (got %llu, %u, "
                "%u)",
                static_cast<unsigned long long>(groupSize), k, numExperts);
  uint64_t numTokens;
  if (!checkedMul(groupSize, k, &numTokens))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "group size %llu times k %u overflows",
                static_cast<unsigned long long>(groupSize), k);
  // vmoe: `num_tokens * capacity_factor / num_experts` in Python floats: the
  // product and the quotient each round, so a result a hair above an integer
  // ceils up exactly as it does there. (Never build with -ffast-math.)
  double value = static_cast<double>(numTokens) * capacityFactor /
                 static_cast<double>(numExperts);
  double ceiled = std::ceil(value);
  if (!(ceiled >= 1))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity factor %s gives capacity %s < 1 for group size "
                "%llu, k %u, %u experts",
                formatDouble(capacityFactor).text, formatDouble(ceiled).text,
                static_cast<unsigned long long>(groupSize), k, numExperts);
  if (!(ceiled <= 4294967292.0)) // the largest multiple of 4 in 32 bits
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity %s does not fit in 32 bits",
                formatDouble(ceiled).text);
  uint64_t c = static_cast<uint64_t>(ceiled);
  *capacity = (c + 3) / 4 * 4;
  return VMOE_STATUS_OK;
}

} // namespace vmoe
