//===- Capacity.cpp - The vmoe expert-capacity rule -----------------------===//

#include "Capacity.h"

#include "Diagnostics.h"
#include "Module.h"

#include <cmath>

namespace vmoe {

vmoe_status_t computeCapacityRule(uint64_t numTokens, uint32_t numExperts,
                                  double capacityFactor, uint32_t multipleOf,
                                  bool round, uint64_t *capacity,
                                  vmoe_message_t *message) {
  if (!(capacityFactor > 0) || !std::isfinite(capacityFactor))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity factor %s must be a finite number > 0",
                formatDouble(capacityFactor).text);
  if (numExperts == 0 || numTokens == 0 || multipleOf == 0)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity needs routed tokens, experts and a multiple >= 1 "
                "(got %llu, %u, %u)",
                static_cast<unsigned long long>(numTokens), numExperts,
                multipleOf);
  // vmoe: `num_tokens * capacity_factor / num_experts` in Python floats: the
  // product and the quotient each round, so a result a hair above an integer
  // ceils up exactly as it does there. (Never build with -ffast-math.)
  double value = static_cast<double>(numTokens) * capacityFactor /
                 static_cast<double>(numExperts);
  // Python's round() is half-to-even: nearbyint in the default rounding mode.
  double rounded = round ? std::nearbyint(value) : std::ceil(value);
  if (!(rounded >= 1))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity factor %s gives capacity %s < 1 for %llu routed "
                "tokens and %u experts",
                formatDouble(capacityFactor).text, formatDouble(rounded).text,
                static_cast<unsigned long long>(numTokens), numExperts);
  if (!(rounded <= 4294967295.0))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity %s does not fit in 32 bits",
                formatDouble(rounded).text);
  uint64_t c = static_cast<uint64_t>(rounded);
  c = (c + multipleOf - 1) / multipleOf * multipleOf;
  if (c > 0xffffffffull)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity %llu does not fit in 32 bits",
                static_cast<unsigned long long>(c));
  *capacity = c;
  return VMOE_STATUS_OK;
}

vmoe_status_t computeCapacity(uint64_t groupSize, uint32_t k,
                              uint32_t numExperts, double capacityFactor,
                              uint64_t *capacity, vmoe_message_t *message) {
  if (k == 0 || groupSize == 0)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity needs group size, k and experts >= 1 (got %llu, %u, "
                "%u)",
                static_cast<unsigned long long>(groupSize), k, numExperts);
  uint64_t numTokens;
  if (!checkedMul(groupSize, k, &numTokens))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "group size %llu times k %u overflows",
                static_cast<unsigned long long>(groupSize), k);
  return computeCapacityRule(numTokens, numExperts, capacityFactor, 4, false,
                             capacity, message);
}

vmoe_status_t layerCapacity(const fb::MoeLayer *layer, double capacityFactor,
                            uint32_t k, uint64_t *capacity,
                            vmoe_message_t *message) {
  bool expertChoice = layer->routing() == fb::RoutingKind::ExpertChoice;
  // Expert choice sizes its buffers for S tokens (vmoe: num_tokens = S).
  uint64_t numTokens = layer->group_size();
  if (!expertChoice && !checkedMul(numTokens, k, &numTokens))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "group size %u times k %u overflows", layer->group_size(), k);
  return computeCapacityRule(numTokens, layer->num_experts(), capacityFactor,
                             layer->capacity_multiple_of(),
                             layer->capacity_round(), capacity, message);
}

} // namespace vmoe
