//===- ModuleValidatorSchedule.cpp - Semantic checks of the schedule ------===//

#include "ModuleValidator.h"

#include "Capacity.h"
#include "Diagnostics.h"
#include "vmoe/kernel_abi.h"

#include <cmath>

namespace vmoe {
namespace validate {

vmoe_status_t Validator::checkKernels() {
  auto *kernels = root.kernels();
  uint32_t executableCount = sizeOf(root.executables());
  for (uint32_t i = 0, e = sizeOf(kernels); i < e; ++i) {
    const fb::Kernel *k = kernels->Get(i);
    if (k->executable() >= executableCount)
      return invalid("kernel %u ('%.64s'): executable index %u out of range "
                     "(%u executables)",
                     i, str(k->name()), k->executable(), executableCount);
    if (!k->entry() || k->entry()->size() == 0)
      return invalid("kernel %u ('%.64s'): no entry symbol", i, str(k->name()));
    if (k->abi_version() != VMOE_KERNEL_ABI_VERSION)
      return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                  "kernel %u ('%.64s') uses kernel ABI version %u; this "
                  "runtime implements version %u",
                  i, str(k->name()), k->abi_version(), VMOE_KERNEL_ABI_VERSION);
    const fb::Dim3 *grid = k->workgroup_count();
    if (!grid)
      return invalid("kernel %u ('%.64s'): no workgroup count", i,
                     str(k->name()));
    uint32_t dims[3] = {grid->x(), grid->y(), grid->z()};
    uint64_t total = 1;
    for (uint32_t d = 0; d < 3; ++d) {
      if (dims[d] < 1 || dims[d] > VMOE_MAX_WORKGROUP_COUNT_PER_DIM)
        return invalid("kernel %u ('%.64s'): workgroup count %u in dim %u "
                       "is out of range [1, %u]",
                       i, str(k->name()), dims[d], d,
                       VMOE_MAX_WORKGROUP_COUNT_PER_DIM);
      total *= dims[d]; // <= 2^24 * 2^31 after each step: no overflow
      if (total > VMOE_MAX_WORKGROUPS)
        return invalid("kernel %u ('%.64s'): grid %ux%ux%u has more than "
                       "the %llu workgroups a dispatch may have",
                       i, str(k->name()), dims[0], dims[1], dims[2],
                       static_cast<ull>(VMOE_MAX_WORKGROUPS));
    }
    if (executableFormat(k->executable()) == fb::ExecutableFormat::Cuda) {
      const fb::Dim3 *block = k->workgroup_size();
      uint64_t threads =
          block ? uint64_t(block->x()) * block->y() * uint64_t(block->z()) : 0;
      if (threads < 1 || threads > 1024)
        return invalid("kernel %u ('%.64s'): CUDA block of %llu threads is "
                       "outside [1, 1024]",
                       i, str(k->name()), static_cast<ull>(threads));
    }
    if (k->binding_count() > VMOE_MAX_KERNEL_BINDINGS)
      return invalid("kernel %u ('%.64s'): %u bindings exceed the limit %u", i,
                     str(k->name()), k->binding_count(),
                     VMOE_MAX_KERNEL_BINDINGS);
    if (k->constant_count() > VMOE_MAX_KERNEL_CONSTANTS)
      return invalid("kernel %u ('%.64s'): %u push constants exceed the "
                     "limit %u",
                     i, str(k->name()), k->constant_count(),
                     VMOE_MAX_KERNEL_CONSTANTS);
    if (k->scratch_size() > VMOE_MAX_KERNEL_SCRATCH)
      return invalid("kernel %u ('%.64s'): scratch of %llu bytes exceeds "
                     "the limit %llu",
                     i, str(k->name()), static_cast<ull>(k->scratch_size()),
                     static_cast<ull>(VMOE_MAX_KERNEL_SCRATCH));
    out->maxScratchSize = std::max(out->maxScratchSize, k->scratch_size());
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkBinding(uint32_t d, uint32_t b,
                                      const fb::Binding *binding) {
  const fb::Signature *sig = root.signature();
  uint64_t limit = 0;
  uint32_t count = 0;
  switch (binding->kind()) {
  case fb::BufferKind::Arena: {
    if (!rangeWithin(binding->offset(), binding->length(), arenaSize))
      return invalid("dispatch %u, binding %u: arena range [%llu, +%llu) "
                     "exceeds the arena size %llu",
                     d, b, static_cast<ull>(binding->offset()),
                     static_cast<ull>(binding->length()),
                     static_cast<ull>(arenaSize));
    if (const Range *c =
            findIntersecting(arenaConstants, binding->offset(),
                             binding->offset() + binding->length()))
      return invalid("dispatch %u, binding %u: arena range [%llu, +%llu) "
                     "overlaps the arena copy of constant %u",
                     d, b, static_cast<ull>(binding->offset()),
                     static_cast<ull>(binding->length()), c->index);
    return checkBindingAlignment(d, b, binding);
  }
  case fb::BufferKind::Constant:
    count = sizeOf(root.constants());
    if (binding->index() < count)
      limit = root.segments()
                  ->Get(root.constants()->Get(binding->index())->segment())
                  ->length();
    break;
  case fb::BufferKind::Input:
    count = sizeOf(sig->inputs());
    if (binding->index() < count)
      limit = tensorBytes(out->inputItemBytes[binding->index()],
                          sig->inputs()->Get(binding->index()));
    break;
  case fb::BufferKind::Output:
    count = sizeOf(sig->outputs());
    if (binding->index() < count)
      limit = tensorBytes(out->outputItemBytes[binding->index()],
                          sig->outputs()->Get(binding->index()));
    break;
  default:
    return invalid("dispatch %u, binding %u: unknown buffer kind %u", d, b,
                   static_cast<uint32_t>(binding->kind()));
  }
  const char *kind = kindName(binding->kind());
  if (binding->index() >= count)
    return invalid("dispatch %u, binding %u: %s index %u out of range (%u "
                   "%ss)",
                   d, b, kind, binding->index(), count, kind);
  if (!rangeWithin(binding->offset(), binding->length(), limit))
    return invalid("dispatch %u, binding %u: range [%llu, +%llu) exceeds "
                   "%s %u of %llu bytes",
                   d, b, static_cast<ull>(binding->offset()),
                   static_cast<ull>(binding->length()), kind, binding->index(),
                   static_cast<ull>(limit));
  return checkBindingAlignment(d, b, binding);
}

vmoe_status_t Validator::checkBindingAlignment(uint32_t d, uint32_t b,
                                               const fb::Binding *binding) {
  // Kernels use aligned vector loads and stores: a misaligned base faults.
  if (binding->offset() % kBindingAlignment)
    return invalid("dispatch %u, binding %u: offset %llu is not a multiple "
                   "of %u bytes",
                   d, b, static_cast<ull>(binding->offset()),
                   kBindingAlignment);
  // The base of a constant is its segment's (or its arena copy's)
  // alignment; the other kinds start 64-byte aligned.
  if (binding->kind() == fb::BufferKind::Constant) {
    uint32_t segment = root.constants()->Get(binding->index())->segment();
    uint64_t align = root.segments()->Get(segment)->alignment();
    if (align < kBindingAlignment)
      return invalid("dispatch %u, binding %u: constant %u is in segment %u, "
                     "aligned to %llu bytes; bound constants need %u",
                     d, b, binding->index(), segment, static_cast<ull>(align),
                     kBindingAlignment);
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkConstantNotWritten(uint32_t d, uint32_t b,
                                                 uint32_t k,
                                                 const fb::Binding *binding) {
  // Constants are shared by every session (and every copy of a borrowed
  // module): a kernel that writes one changes the weights of all later runs.
  if (binding->kind() != fb::BufferKind::Constant)
    return VMOE_STATUS_OK;
  const fb::Kernel *kernel = root.kernels()->Get(k);
  const auto *written = kernel->written_bindings();
  if (!written)
    return invalid("dispatch %u, binding %u: kernel %u ('%.64s') may write "
                   "binding %u (the module does not record which bindings "
                   "its kernels write; recompile it), which is bound to "
                   "constant %u (constants are read-only)",
                   d, b, k, str(kernel->name()), b, binding->index());
  if (written->Get(b))
    return invalid("dispatch %u, binding %u: kernel %u ('%.64s') writes "
                   "binding %u, which is bound to constant %u (constants are "
                   "read-only)",
                   d, b, k, str(kernel->name()), b, binding->index());
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkDispatches() {
  auto *dispatches = root.dispatches();
  uint32_t kernelCount = sizeOf(root.kernels());
  uint32_t layerCount = sizeOf(root.moe_layers());
  for (uint32_t d = 0, e = sizeOf(dispatches); d < e; ++d) {
    const fb::Dispatch *dispatch = dispatches->Get(d);
    if (dispatch->collective()) {
      if (vmoe_status_t s = checkCollective(d, dispatch))
        return s;
      continue;
    }
    if (dispatch->kernel() >= kernelCount)
      return invalid("dispatch %u: kernel index %u out of range (%u "
                     "kernels)",
                     d, dispatch->kernel(), kernelCount);
    const fb::Kernel *kernel = root.kernels()->Get(dispatch->kernel());
    uint32_t bindingCount = sizeOf(dispatch->bindings());
    if (bindingCount != kernel->binding_count())
      return invalid("dispatch %u: %u bindings, but kernel %u ('%.64s') "
                     "takes %u",
                     d, bindingCount, dispatch->kernel(), str(kernel->name()),
                     kernel->binding_count());
    // After the count check: a forged binding_count reads as that mismatch.
    if (kernel->written_bindings() &&
        kernel->written_bindings()->size() != bindingCount)
      return invalid("kernel %u ('%.64s'): %u written-binding flags for %u "
                     "bindings",
                     dispatch->kernel(), str(kernel->name()),
                     kernel->written_bindings()->size(), bindingCount);
    uint32_t constantCount = sizeOf(dispatch->push_constants());
    if (constantCount != kernel->constant_count())
      return invalid("dispatch %u: %u push constants, but kernel %u "
                     "('%.64s') takes %u",
                     d, constantCount, dispatch->kernel(), str(kernel->name()),
                     kernel->constant_count());
    if (const fb::BatchGrid *bg = dispatch->batch_grid()) {
      // At the maximum batch the grid must be the kernel's: smaller batches
      // then only ever shrink it.
      uint64_t units;
      if (bg->units_per_image() < 1 || bg->units_per_workgroup() < 1 ||
          !checkedMul(bg->units_per_image(), static_cast<uint64_t>(maxBatch),
                      &units) ||
          units / bg->units_per_workgroup() +
                  (units % bg->units_per_workgroup() != 0) !=
              kernel->workgroup_count()->x())
        return invalid("dispatch %u: batch grid of %llu units per image "
                       "and %llu per workgroup does not give the kernel's "
                       "%u workgroups at the maximum batch %lld",
                       d, static_cast<ull>(bg->units_per_image()),
                       static_cast<ull>(bg->units_per_workgroup()),
                       kernel->workgroup_count()->x(),
                       static_cast<long long>(maxBatch));
    }
    for (uint32_t b = 0; b < bindingCount; ++b)
      if (vmoe_status_t s = checkBinding(d, b, dispatch->bindings()->Get(b)))
        return s;
    for (uint32_t b = 0; b < bindingCount; ++b)
      if (vmoe_status_t s = checkConstantNotWritten(
              d, b, dispatch->kernel(), dispatch->bindings()->Get(b)))
        return s;
    for (uint32_t c = 0; c < constantCount; ++c) {
      const fb::PushConstant *pc = dispatch->push_constants()->Get(c);
      switch (pc->source()) {
      case fb::PushConstantSource::Literal:
      case fb::PushConstantSource::BatchSize:
        break;
      case fb::PushConstantSource::MoeK:
        if (!(root.requirements() & VMOE_REQUIRES_K_KNOB))
          return invalid("dispatch %u, push constant %u takes the call's k "
                         "but the module does not require it",
                         d, c);
        [[fallthrough]];
      case fb::PushConstantSource::MoeCapacity:
      case fb::PushConstantSource::MoeBpr:
        if (pc->layer() >= layerCount)
          return invalid("dispatch %u, push constant %u: MoE layer %u out "
                         "of range (%u layers)",
                         d, c, pc->layer(), layerCount);
        break;
      default:
        return invalid("dispatch %u, push constant %u: unknown source %u", d, c,
                       static_cast<uint32_t>(pc->source()));
      }
    }
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkStatsBuffer(uint32_t i, const char *what,
                                          uint64_t offset, uint64_t count) {
  uint64_t bytes;
  if (!checkedMul(count, 4, &bytes) || !rangeWithin(offset, bytes, arenaSize))
    return invalid("MoE layer %u: %s buffer at %llu (%llu int32) exceeds "
                   "the arena size %llu",
                   i, what, static_cast<ull>(offset), static_cast<ull>(count),
                   static_cast<ull>(arenaSize));
  if (offset % 4)
    return invalid("MoE layer %u: %s buffer offset %llu is not 4-byte "
                   "aligned",
                   i, what, static_cast<ull>(offset));
  if (const Range *c = findIntersecting(arenaConstants, offset, offset + bytes))
    return invalid("MoE layer %u: %s buffer overlaps the arena copy of "
                   "constant %u",
                   i, what, c->index);
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkCapacityRule(uint32_t i, const fb::MoeLayer *l) {
  bool expertChoice = l->routing() == fb::RoutingKind::ExpertChoice;
  if (l->routing() != fb::RoutingKind::TopK && !expertChoice)
    return invalid("MoE layer %u: unknown routing kind %u", i,
                   static_cast<uint32_t>(l->routing()));
  if (expertChoice && l->k() != 1)
    return invalid("MoE layer %u: expert choice needs k 1, got %u", i, l->k());
  uint64_t flag = expertChoice ? VMOE_REQUIRES_EXPERT_CHOICE : 0;
  if ((root.requirements() & flag) != flag)
    return invalid("MoE layer %u routes by expert choice but the module "
                   "does not require it",
                   i);
  double defaultCf = l->default_capacity_factor();
  double maxCf = l->max_capacity_factor();
  if (defaultCf == 0 && maxCf == 0) {
    // A fixed capacity: max_capacity in every call.
    if (l->max_capacity() < 1)
      return invalid("MoE layer %u: fixed capacity %u must be >= 1", i,
                     l->max_capacity());
    return VMOE_STATUS_OK;
  }
  if (!(maxCf > 0) || !std::isfinite(maxCf) || !(defaultCf > 0) ||
      !(defaultCf <= maxCf))
    return invalid("MoE layer %u: capacity factors need 0 < default (%s) "
                   "<= maximum (%s), or both 0 for a fixed capacity",
                   i, formatDouble(defaultCf).text, formatDouble(maxCf).text);
  bool defaultRule = l->capacity_multiple_of() == 4 && !l->capacity_round();
  if (!defaultRule && !(root.requirements() & VMOE_REQUIRES_CAPACITY_RULE))
    return invalid("MoE layer %u has its own capacity rule but the module "
                   "does not require it",
                   i);
  uint64_t maxCapacity;
  if (layerCapacity(l, maxCf, l->k(), &maxCapacity, message) !=
      VMOE_STATUS_OK) {
    prependMessage(message, "MoE layer %u", i);
    return VMOE_STATUS_INVALID_MODULE;
  }
  // Capacity past S changes nothing (an expert gets at most S
  // assignments per group), so C_max may stop there.
  uint64_t needed = std::min<uint64_t>(maxCapacity, l->group_size());
  if (l->max_capacity() < needed)
    return invalid("MoE layer %u: compiled capacity %u is smaller than "
                   "%llu, the capacity of its maximum capacity factor %s",
                   i, l->max_capacity(), static_cast<ull>(needed),
                   formatDouble(maxCf).text);
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkMoeLayers() {
  auto *layers = root.moe_layers();
  for (uint32_t i = 0, e = sizeOf(layers); i < e; ++i) {
    const fb::MoeLayer *l = layers->Get(i);
    if (l->num_experts() < 1 || l->k() < 1 || l->k() > l->num_experts())
      return invalid("MoE layer %u: k %u and %u experts need 1 <= k <= E", i,
                     l->k(), l->num_experts());
    if (l->group_size() < 1 || l->num_groups() < 1 || l->tokens_per_image() < 1)
      return invalid("MoE layer %u: group size %u, group count %u and "
                     "tokens per image %u must be >= 1",
                     i, l->group_size(), l->num_groups(),
                     l->tokens_per_image());
    uint64_t tokens;
    if (!checkedMul(l->group_size(), l->num_groups(), &tokens) ||
        tokens != l->num_tokens())
      return invalid("MoE layer %u: %llu tokens is not %u groups of %u", i,
                     static_cast<ull>(l->num_tokens()), l->num_groups(),
                     l->group_size());
    uint64_t imageTokens;
    if (!checkedMul(static_cast<uint64_t>(maxBatch), l->tokens_per_image(),
                    &imageTokens) ||
        imageTokens != tokens)
      return invalid("MoE layer %u: %llu tokens is not the maximum batch "
                     "%lld times %u tokens per image",
                     i, static_cast<ull>(tokens),
                     static_cast<long long>(maxBatch), l->tokens_per_image());
    if (vmoe_status_t s = checkCapacityRule(i, l))
      return s;
    if (const fb::RoutingStats *stats = l->stats()) {
      uint64_t counts;
      if (!checkedMul(l->num_groups(), l->num_experts(), &counts))
        return invalid("MoE layer %u: counts buffer size overflows", i);
      vmoe_status_t s;
      if ((s = checkStatsBuffer(i, "expert counts",
                                stats->expert_counts_offset(), counts)) ||
          (s = checkStatsBuffer(i, "token kept", stats->token_kept_offset(),
                                tokens)))
        return s;
    }
  }
  return VMOE_STATUS_OK;
}

} // namespace validate
} // namespace vmoe
