//===- RoutingStats.cpp - Routing statistics of the last run --------------===//

#include "RoutingStats.h"

#include "Diagnostics.h"

#include <cstring>

namespace vmoe {

void RoutingStats::init(const Module *m, const uint8_t *hostArena) {
  module = m;
  arena = hostArena;
  last.resize(sizeOf(module->root().moe_layers()));
}

void RoutingStats::record(std::vector<LayerCall> *layers, int64_t batch) {
  last.swap(*layers);
  lastBatch = batch;
  valid = true;
}

vmoe_status_t RoutingStats::checkLayer(uint32_t layer,
                                       vmoe_message_t *message) const {
  uint32_t count = sizeOf(module->root().moe_layers());
  if (layer >= count)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "MoE layer %u out of range (%u layers)", layer, count);
  if (!module->root().moe_layers()->Get(layer)->stats())
    return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                "MoE layer %u records no routing statistics", layer);
  if (!valid)
    return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                "no routing statistics: the session has no successful run");
  return VMOE_STATUS_OK;
}

void RoutingStats::countAssignments(uint32_t layer, uint64_t *assigned,
                                    uint64_t *kept, uint64_t *perExpertAssigned,
                                    uint64_t *perExpertKept) const {
  const fb::MoeLayer *l = module->root().moe_layers()->Get(layer);
  uint32_t experts = l->num_experts();
  uint64_t tokens = static_cast<uint64_t>(lastBatch) * l->tokens_per_image();
  uint64_t groups = (tokens + l->group_size() - 1) / l->group_size();
  uint64_t capacity = last[layer].capacity;
  const uint8_t *base = arena + l->stats()->expert_counts_offset();
  *assigned = *kept = 0;
  for (uint64_t g = 0; g < groups; ++g) {
    for (uint32_t e = 0; e < experts; ++e) {
      int32_t raw;
      memcpy(&raw, base + (g * experts + e) * 4, 4);
      // Counts come from kernels; a negative one would be a kernel bug, and
      // must not wrap into a huge number here.
      uint64_t count = raw > 0 ? static_cast<uint64_t>(raw) : 0;
      uint64_t fit = count < capacity ? count : capacity;
      *assigned += count;
      *kept += fit;
      if (perExpertAssigned)
        perExpertAssigned[e] += count;
      if (perExpertKept)
        perExpertKept[e] += fit;
    }
  }
}

vmoe_status_t RoutingStats::routingStats(uint32_t layer,
                                         vmoe_routing_stats_t *out,
                                         vmoe_message_t *message) const {
  if (vmoe_status_t status = checkLayer(layer, message))
    return status;
  const fb::MoeLayer *l = module->root().moe_layers()->Get(layer);
  vmoe_routing_stats_t stats;
  memset(&stats, 0, sizeof(stats));
  stats.capacity = static_cast<uint32_t>(last[layer].capacity);
  stats.capacity_factor = last[layer].capacityFactor;
  stats.bpr = last[layer].bpr;
  stats.num_experts = l->num_experts();
  stats.k = last[layer].k;
  stats.image_count = static_cast<uint32_t>(lastBatch);
  stats.token_count = static_cast<uint64_t>(lastBatch) * l->tokens_per_image();
  stats.group_count = static_cast<uint32_t>(
      (stats.token_count + l->group_size() - 1) / l->group_size());
  countAssignments(layer, &stats.assignments, &stats.assignments_kept, nullptr,
                   nullptr);
  stats.assignments_dropped = stats.assignments - stats.assignments_kept;
  *out = stats;
  return VMOE_STATUS_OK;
}

vmoe_status_t RoutingStats::expertLoad(uint32_t layer, uint64_t *assigned,
                                       uint64_t *kept, uint32_t expertCount,
                                       vmoe_message_t *message) const {
  if (vmoe_status_t status = checkLayer(layer, message))
    return status;
  uint32_t experts = module->root().moe_layers()->Get(layer)->num_experts();
  if (expertCount != experts)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "MoE layer %u has %u experts, the arrays hold %u", layer,
                experts, expertCount);
  if (assigned)
    memset(assigned, 0, experts * sizeof(uint64_t));
  if (kept)
    memset(kept, 0, experts * sizeof(uint64_t));
  uint64_t totalAssigned, totalKept;
  countAssignments(layer, &totalAssigned, &totalKept, assigned, kept);
  return VMOE_STATUS_OK;
}

vmoe_status_t RoutingStats::imageCoverage(uint32_t layer, double *shares,
                                          uint32_t imageCount,
                                          vmoe_message_t *message) const {
  if (vmoe_status_t status = checkLayer(layer, message))
    return status;
  if (imageCount != static_cast<uint64_t>(lastBatch))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "the last call had %lld images, the array holds %u",
                static_cast<long long>(lastBatch), imageCount);
  if (imageCount && !shares)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT, "shares is null");
  const fb::MoeLayer *l = module->root().moe_layers()->Get(layer);
  uint32_t perImage = l->tokens_per_image();
  const uint8_t *kept = arena + l->stats()->token_kept_offset();
  for (uint32_t image = 0; image < imageCount; ++image) {
    uint64_t reached = 0;
    for (uint32_t t = 0; t < perImage; ++t) {
      int32_t value;
      memcpy(&value, kept + (uint64_t(image) * perImage + t) * 4, 4);
      reached += value > 0;
    }
    shares[image] = static_cast<double>(reached) / perImage;
  }
  return VMOE_STATUS_OK;
}

} // namespace vmoe
