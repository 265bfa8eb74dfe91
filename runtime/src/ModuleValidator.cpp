//===- ModuleValidator.cpp - Semantic checks of a module's structure ------===//

#include "ModuleValidator.h"

#include "Diagnostics.h"

#include <cstdarg>
#include <cstdio>

namespace vmoe {
namespace validate {

namespace {

/// Runtime feature bits this runtime implements (Module.requirements).
constexpr uint64_t kKnownRequirements =
    VMOE_REQUIRES_CAPACITY_RULE | VMOE_REQUIRES_EXPERT_CHOICE |
    VMOE_REQUIRES_K_KNOB | VMOE_REQUIRES_EXPERT_SHARDS;

} // namespace

vmoe_status_t Validator::invalid(const char *format, ...) {
  if (message) {
    va_list args;
    va_start(args, format);
    vsnprintf(message->text, sizeof(message->text), format, args);
    va_end(args);
  }
  return VMOE_STATUS_INVALID_MODULE;
}

vmoe_status_t Validator::checkVersion() {
  const fb::Version *v = root.version();
  if (!v)
    return invalid("module has no format version");
  if (v->major() != header.format_major || v->minor() != header.format_minor)
    return invalid("format version %u.%u in the metadata disagrees with "
                   "%u.%u in the file header",
                   v->major(), v->minor(), header.format_major,
                   header.format_minor);
  if (uint64_t unknown = root.requirements() & ~kKnownRequirements)
    return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                "module requires runtime features 0x%llx that this runtime "
                "(format %u.%u) does not implement",
                static_cast<ull>(unknown), VMOE_FORMAT_VERSION_MAJOR,
                VMOE_FORMAT_VERSION_MINOR);
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkArena() {
  const fb::ArenaPlan *arena = root.arena();
  if (!arena)
    return invalid("module has no arena plan");
  arenaSize = arena->size();
  if (!isPowerOfTwo(arena->alignment()) ||
      arena->alignment() > VMOE_MAX_ARENA_ALIGNMENT)
    return invalid("arena alignment %llu is not a power of two <= %u",
                   static_cast<ull>(arena->alignment()),
                   VMOE_MAX_ARENA_ALIGNMENT);
  if (arenaSize > SIZE_MAX / 2)
    return invalid("arena size %llu is too large for this host",
                   static_cast<ull>(arenaSize));
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkSegments() {
  auto *segments = root.segments();
  if (!alignedVector(segments))
    return invalid("the segment table is misaligned");
  std::vector<Range> ranges;
  for (uint32_t i = 0, e = sizeOf(segments); i < e; ++i) {
    const fb::Segment *seg = segments->Get(i);
    uint64_t align = seg->alignment();
    if (!isPowerOfTwo(align) || align > VMOE_MAX_SEGMENT_ALIGNMENT)
      return invalid("segment %u: alignment %llu is not a power of two <= "
                     "%u",
                     i, static_cast<ull>(align), VMOE_MAX_SEGMENT_ALIGNMENT);
    uint64_t end;
    if (!checkedAdd(seg->offset(), seg->length(), &end))
      return invalid("segment %u: offset %llu + length %llu overflows", i,
                     static_cast<ull>(seg->offset()),
                     static_cast<ull>(seg->length()));
    if (end > header.segment_size)
      return invalid("segment %u: range [%llu, %llu) extends past the end of "
                     "the segment area (%llu bytes)",
                     i, static_cast<ull>(seg->offset()), static_cast<ull>(end),
                     static_cast<ull>(header.segment_size));
    if (seg->offset() % align != 0)
      return invalid("segment %u: offset %llu is not a multiple of its "
                     "alignment %llu",
                     i, static_cast<ull>(seg->offset()),
                     static_cast<ull>(align));
    // Also the address: a borrowed buffer may sit anywhere in memory.
    if (reinterpret_cast<uintptr_t>(segmentBase + seg->offset()) % align)
      return invalid("segment %u: its address is not %llu-byte aligned in "
                     "memory; load the module from a %u-byte aligned buffer "
                     "(or with VMOE_MEMORY_COPY)",
                     i, static_cast<ull>(align), VMOE_SEGMENT_BASE_ALIGNMENT);
    if (seg->length())
      ranges.push_back({seg->offset(), end, i});
  }
  Range a, b;
  if (findOverlap(ranges, &a, &b))
    return invalid("segments %u [%llu, %llu) and %u [%llu, %llu) overlap",
                   a.index, static_cast<ull>(a.begin), static_cast<ull>(a.end),
                   b.index, static_cast<ull>(b.begin), static_cast<ull>(b.end));
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkSegmentIndex(const char *what, uint32_t owner,
                                           uint64_t segment) {
  if (segment >= sizeOf(root.segments()))
    return invalid("%s %u: segment index %llu out of range (%u segments)", what,
                   owner, static_cast<ull>(segment), sizeOf(root.segments()));
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkTensors(
    const char *what,
    const flatbuffers::Vector<flatbuffers::Offset<fb::TensorSpec>> *tensors,
    int64_t maxBatch, std::vector<uint64_t> &itemBytes) {
  for (uint32_t i = 0, e = sizeOf(tensors); i < e; ++i) {
    const fb::TensorSpec *t = tensors->Get(i);
    if (!t->name() || t->name()->size() == 0)
      return invalid("%s %u has no name", what, i);
    for (uint32_t j = 0; j < i; ++j)
      if (strcmp(tensors->Get(j)->name()->c_str(), t->name()->c_str()) == 0)
        return invalid("%s %u ('%.64s'): name used twice", what, i,
                       t->name()->c_str());
    uint64_t elemSize = dtypeSize(static_cast<uint32_t>(t->dtype()));
    if (!elemSize)
      return invalid("%s %u ('%.64s'): unknown dtype %u", what, i,
                     t->name()->c_str(), static_cast<uint32_t>(t->dtype()));
    uint32_t rank = sizeOf(t->shape());
    if (!t->shape())
      return invalid("%s %u ('%.64s') has no shape", what, i,
                     t->name()->c_str());
    if (!alignedVector(t->shape()))
      return invalid("%s %u ('%.64s'): the shape is misaligned", what, i,
                     t->name()->c_str());
    if (rank > VMOE_MAX_TENSOR_RANK)
      return invalid("%s %u ('%.64s'): rank %u exceeds the limit %u", what, i,
                     t->name()->c_str(), rank, VMOE_MAX_TENSOR_RANK);
    int32_t batchDim = t->batch_dim();
    if (batchDim < -1 || batchDim >= static_cast<int32_t>(rank))
      return invalid("%s %u ('%.64s'): batch dim %d out of range for rank "
                     "%u",
                     what, i, t->name()->c_str(), batchDim, rank);
    uint64_t bytes = elemSize;
    for (uint32_t d = 0; d < rank; ++d) {
      int64_t dim = t->shape()->Get(d);
      if (dim < 0)
        return invalid("%s %u ('%.64s'): dim %u is negative (%lld)", what, i,
                       t->name()->c_str(), d, static_cast<long long>(dim));
      if (static_cast<int32_t>(d) == batchDim) {
        if (dim != maxBatch)
          return invalid("%s %u ('%.64s'): batch dim %u is %lld but the "
                         "maximum batch is %lld",
                         what, i, t->name()->c_str(), d,
                         static_cast<long long>(dim),
                         static_cast<long long>(maxBatch));
        continue;
      }
      if (!checkedMul(bytes, static_cast<uint64_t>(dim), &bytes))
        return invalid("%s %u ('%.64s'): byte size of shape %s overflows", what,
                       i, t->name()->c_str(),
                       formatShape(t->shape()->data(), rank).text);
    }
    uint64_t total;
    if (batchDim >= 0 &&
        !checkedMul(bytes, static_cast<uint64_t>(maxBatch), &total))
      return invalid("%s %u ('%.64s'): byte size of shape %s overflows", what,
                     i, t->name()->c_str(),
                     formatShape(t->shape()->data(), rank).text);
    itemBytes.push_back(bytes);
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkSignature() {
  const fb::Signature *sig = root.signature();
  if (!sig)
    return invalid("module has no signature");
  maxBatch = sig->max_batch();
  if (maxBatch < 1)
    return invalid("maximum batch %lld must be >= 1",
                   static_cast<long long>(maxBatch));
  if (sig->batch_multiple() < 1 || maxBatch % sig->batch_multiple() != 0)
    return invalid("batch multiple %lld must be >= 1 and divide the "
                   "maximum batch %lld",
                   static_cast<long long>(sig->batch_multiple()),
                   static_cast<long long>(maxBatch));
  vmoe_status_t s;
  if ((s = checkTensors("input", sig->inputs(), maxBatch,
                        out->inputItemBytes)) ||
      (s = checkTensors("output", sig->outputs(), maxBatch,
                        out->outputItemBytes)))
    return s;
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkConstants() {
  auto *constants = root.constants();
  for (uint32_t i = 0, e = sizeOf(constants); i < e; ++i) {
    const fb::Constant *c = constants->Get(i);
    if (vmoe_status_t s = checkSegmentIndex("constant", i, c->segment()))
      return s;
    const fb::Segment *seg = root.segments()->Get(c->segment());
    switch (c->placement()) {
    case fb::ConstantPlacement::InPlace:
      break;
    case fb::ConstantPlacement::Arena: {
      if (!rangeWithin(c->arena_offset(), seg->length(), arenaSize))
        return invalid("constant %u ('%.64s'): arena range at %llu of %llu "
                       "bytes exceeds the arena size %llu",
                       i, str(c->name()), static_cast<ull>(c->arena_offset()),
                       static_cast<ull>(seg->length()),
                       static_cast<ull>(arenaSize));
      if (c->arena_offset() % seg->alignment())
        return invalid("constant %u ('%.64s'): arena offset %llu is not a "
                       "multiple of its alignment %llu",
                       i, str(c->name()), static_cast<ull>(c->arena_offset()),
                       static_cast<ull>(seg->alignment()));
      if (seg->length())
        arenaConstants.push_back(
            {c->arena_offset(), c->arena_offset() + seg->length(), i});
      break;
    }
    default:
      return invalid("constant %u ('%.64s'): unknown placement %u", i,
                     str(c->name()), static_cast<uint32_t>(c->placement()));
    }
  }
  Range a, b;
  if (findOverlap(arenaConstants, &a, &b))
    return invalid("constants %u and %u overlap in the arena ([%llu, %llu) "
                   "and [%llu, %llu))",
                   a.index, b.index, static_cast<ull>(a.begin),
                   static_cast<ull>(a.end), static_cast<ull>(b.begin),
                   static_cast<ull>(b.end));
  return VMOE_STATUS_OK;
}

vmoe_status_t Validator::checkExecutables() {
  auto *executables = root.executables();
  for (uint32_t i = 0, e = sizeOf(executables); i < e; ++i) {
    const fb::Executable *x = executables->Get(i);
    vmoe_status_t s;
    switch (x->format()) {
    case fb::ExecutableFormat::CpuSharedObject: {
      const fb::CpuExecutable *cpu = x->cpu();
      if (!cpu)
        return invalid("executable %u: CPU shared object without its CPU "
                       "description",
                       i);
      if (!cpu->target_triple() || cpu->target_triple()->size() == 0)
        return invalid("executable %u: no target triple", i);
      if ((s = checkSegmentIndex("executable", i, cpu->segment())))
        return s;
      break;
    }
    case fb::ExecutableFormat::Cuda: {
      const fb::CudaExecutable *cuda = x->cuda();
      if (!cuda)
        return invalid("executable %u: CUDA executable without its CUDA "
                       "description",
                       i);
      if (cuda->ptx_segment() != -1) {
        if (cuda->ptx_segment() < 0)
          return invalid("executable %u: PTX segment %lld is invalid", i,
                         static_cast<long long>(cuda->ptx_segment()));
        if ((s = checkSegmentIndex("executable", i,
                                   static_cast<uint64_t>(cuda->ptx_segment()))))
          return s;
        if (cuda->ptx_sm() == 0)
          return invalid("executable %u: PTX without its SM version", i);
      }
      for (uint32_t j = 0, n = sizeOf(cuda->cubins()); j < n; ++j) {
        const fb::CudaCubin *cubin = cuda->cubins()->Get(j);
        if (cubin->sm() == 0)
          return invalid("executable %u: cubin %u has no SM version", i, j);
        if ((s = checkSegmentIndex("executable", i, cubin->segment())))
          return s;
      }
      if (cuda->ptx_segment() == -1 && sizeOf(cuda->cubins()) == 0)
        return invalid("executable %u: CUDA executable with neither PTX "
                       "nor cubin",
                       i);
      break;
    }
    default:
      return invalid("executable %u: unknown format %u", i,
                     static_cast<uint32_t>(x->format()));
    }
  }
  return VMOE_STATUS_OK;
}

} // namespace validate
} // namespace vmoe
