//===- ModuleValidatorShards.cpp - Checks of expert-sharded modules -------===//
//
// A module that is one rank's part of an expert-sharded model
// (Module.expert_shard) holds a slice of every MoE layer's experts and runs
// collective steps (Dispatch.collective) that the caller's exchange executes
// on arena regions. Both are checked here, so that a forged shard can neither
// send past the arena nor claim experts that do not add up to the model.
//
//===----------------------------------------------------------------------===//

#include "ModuleValidator.h"

#include "Diagnostics.h"

namespace vmoe {
namespace validate {

namespace {

/// More ranks than any exchange here is meant for; bounds the arithmetic.
constexpr uint32_t kMaxShards = 65536;

} // namespace

vmoe_status_t Validator::checkExpertShard() {
  const fb::ExpertShard *shard = root.expert_shard();
  bool required = root.requirements() & VMOE_REQUIRES_EXPERT_SHARDS;
  if (!shard) {
    if (required)
      return invalid("module requires expert shards but holds no "
                     "expert_shard table");
    for (uint32_t i = 0, e = sizeOf(root.moe_layers()); i < e; ++i) {
      const fb::MoeLayer *l = root.moe_layers()->Get(i);
      if (l->first_expert() != 0 ||
          (l->local_experts() != 0 && l->local_experts() != l->num_experts()))
        return invalid("MoE layer %u holds experts [%u, +%u) of %u, but the "
                       "module is not an expert shard",
                       i, l->first_expert(), l->local_experts(),
                       l->num_experts());
    }
    return VMOE_STATUS_OK;
  }
  if (!required)
    return invalid("module is an expert shard but does not require expert "
                   "shards");
  if (!shard->model_id())
    return invalid("expert shard has no model id");
  if (shard->size() < 2 || shard->size() > kMaxShards)
    return invalid("expert shard count %u is outside [2, %u]", shard->size(),
                   kMaxShards);
  if (shard->rank() >= shard->size())
    return invalid("expert shard rank %u is out of range (%u ranks)",
                   shard->rank(), shard->size());
  for (uint32_t i = 0, e = sizeOf(root.moe_layers()); i < e; ++i) {
    const fb::MoeLayer *l = root.moe_layers()->Get(i);
    uint64_t local = l->local_experts();
    if (local < 1 || local * shard->size() != l->num_experts() ||
        uint64_t(l->first_expert()) != local * shard->rank())
      return invalid(
          "MoE layer %u: rank %u of %u holds experts [%u, +%u), "
          "but %u experts split over %u ranks give it [%llu, "
          "+%llu)",
          i, shard->rank(), shard->size(), l->first_expert(),
          l->local_experts(), l->num_experts(), shard->size(),
          static_cast<ull>(l->num_experts() / shard->size() * shard->rank()),
          static_cast<ull>(l->num_experts() / shard->size()));
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkCollectiveRegion(uint32_t d, const char *what,
                                               uint64_t offset,
                                               uint64_t bytes) {
  if (!rangeWithin(offset, bytes, arenaSize))
    return invalid("dispatch %u: collective %s region [%llu, +%llu) exceeds "
                   "the arena size %llu",
                   d, what, static_cast<ull>(offset), static_cast<ull>(bytes),
                   static_cast<ull>(arenaSize));
  if (const Range *c = findIntersecting(arenaConstants, offset, offset + bytes))
    return invalid("dispatch %u: collective %s region overlaps the arena copy "
                   "of constant %u",
                   d, what, c->index);
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkCollective(uint32_t d,
                                         const fb::Dispatch *dispatch) {
  const fb::Collective *c = dispatch->collective();
  const fb::ExpertShard *shard = root.expert_shard();
  if (!shard)
    return invalid("dispatch %u is a collective step, but the module is not "
                   "an expert shard",
                   d);
  if (c->kind() != fb::CollectiveKind::AllToAll)
    return invalid("dispatch %u: unknown collective kind %u", d,
                   static_cast<uint32_t>(c->kind()));
  if (sizeOf(dispatch->bindings()) || sizeOf(dispatch->push_constants()) ||
      dispatch->batch_grid())
    return invalid("dispatch %u: a collective step runs no kernel and takes "
                   "no bindings, push constants or batch grid",
                   d);
  uint32_t layerCount = sizeOf(root.moe_layers());
  if (c->layer() >= layerCount)
    return invalid("dispatch %u: collective of MoE layer %u out of range (%u "
                   "layers)",
                   d, c->layer(), layerCount);
  // The largest chunk: every group of the maximum batch at the compiled
  // capacity; both regions hold one per rank.
  const fb::MoeLayer *l = root.moe_layers()->Get(c->layer());
  uint64_t groups = l->num_groups(), slots, slotBytes, groupBytes, chunk, bytes;
  if (!checkedMul(groups, l->max_capacity(), &slots) ||
      !checkedMul(slots, c->slot_bytes(), &slotBytes) ||
      !checkedMul(groups, c->group_bytes(), &groupBytes) ||
      !checkedAdd(slotBytes, groupBytes, &chunk) ||
      !checkedMul(chunk, shard->size(), &bytes))
    return invalid("dispatch %u: collective chunks of %llu bytes per group "
                   "and %llu per slot overflow at %llu groups of capacity %u",
                   d, static_cast<ull>(c->group_bytes()),
                   static_cast<ull>(c->slot_bytes()), static_cast<ull>(groups),
                   l->max_capacity());
  if (vmoe_status_t s =
          checkCollectiveRegion(d, "send", c->send_offset(), bytes))
    return s;
  if (vmoe_status_t s =
          checkCollectiveRegion(d, "receive", c->recv_offset(), bytes))
    return s;
  // The exchange reads one region while it writes the other.
  if (bytes && c->send_offset() < c->recv_offset() + bytes &&
      c->recv_offset() < c->send_offset() + bytes)
    return invalid("dispatch %u: collective send region [%llu, +%llu) and "
                   "receive region [%llu, +%llu) overlap",
                   d, static_cast<ull>(c->send_offset()),
                   static_cast<ull>(bytes), static_cast<ull>(c->recv_offset()),
                   static_cast<ull>(bytes));
  return VMOE_STATUS_OK;
}

} // namespace validate
} // namespace vmoe
