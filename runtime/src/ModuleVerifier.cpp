//===- ModuleVerifier.cpp - Verify a module file before use ---------------===//

#include "ModuleVerifier.h"

#include "Capacity.h"
#include "Diagnostics.h"
#include "vmoe/kernel_abi.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <type_traits>

namespace vmoe {

namespace {

using ull = unsigned long long;

/// Runtime feature bits this runtime implements (Module.requirements).
constexpr uint64_t kKnownRequirements = 0;

const char *kindName(fb::BufferKind kind) {
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

const char *str(const flatbuffers::String *s) { return s ? s->c_str() : ""; }

template <typename T> uint32_t sizeOf(const flatbuffers::Vector<T> *v) {
  return v ? v->size() : 0;
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
bool findOverlap(std::vector<Range> &ranges, Range *a, Range *b) {
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
const Range *findIntersecting(const std::vector<Range> &sorted, uint64_t begin,
                              uint64_t end) {
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
        (s = checkMoeLayers()) || (s = checkDispatches()))
      return s;
    return VMOE_STATUS_OK;
  }

private:
  vmoe_status_t invalid(const char *format, ...)
      __attribute__((format(printf, 2, 3))) {
    if (message) {
      va_list args;
      va_start(args, format);
      vsnprintf(message->text, sizeof(message->text), format, args);
      va_end(args);
    }
    return VMOE_STATUS_INVALID_MODULE;
  }

  vmoe_status_t checkVersion() {
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

  vmoe_status_t checkArena() {
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

  vmoe_status_t checkSegments() {
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
                       i, static_cast<ull>(seg->offset()),
                       static_cast<ull>(end),
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
                     a.index, static_cast<ull>(a.begin),
                     static_cast<ull>(a.end), b.index,
                     static_cast<ull>(b.begin), static_cast<ull>(b.end));
    return VMOE_STATUS_OK;
  }

  vmoe_status_t checkSegmentIndex(const char *what, uint32_t owner,
                                  uint64_t segment) {
    if (segment >= sizeOf(root.segments()))
      return invalid("%s %u: segment index %llu out of range (%u segments)",
                     what, owner, static_cast<ull>(segment),
                     sizeOf(root.segments()));
    return VMOE_STATUS_OK;
  }

  vmoe_status_t checkTensors(
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
          return invalid("%s %u ('%.64s'): byte size of shape %s overflows",
                         what, i, t->name()->c_str(),
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

  vmoe_status_t checkSignature() {
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

  vmoe_status_t checkConstants() {
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

  vmoe_status_t checkExecutables() {
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
          if ((s = checkSegmentIndex(
                   "executable", i,
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

  vmoe_status_t checkKernels() {
    auto *kernels = root.kernels();
    uint32_t executableCount = sizeOf(root.executables());
    for (uint32_t i = 0, e = sizeOf(kernels); i < e; ++i) {
      const fb::Kernel *k = kernels->Get(i);
      if (k->executable() >= executableCount)
        return invalid("kernel %u ('%.64s'): executable index %u out of range "
                       "(%u executables)",
                       i, str(k->name()), k->executable(), executableCount);
      if (!k->entry() || k->entry()->size() == 0)
        return invalid("kernel %u ('%.64s'): no entry symbol", i,
                       str(k->name()));
      if (k->abi_version() != VMOE_KERNEL_ABI_VERSION)
        return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                    "kernel %u ('%.64s') uses kernel ABI version %u; this "
                    "runtime implements version %u",
                    i, str(k->name()), k->abi_version(),
                    VMOE_KERNEL_ABI_VERSION);
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
            block ? uint64_t(block->x()) * block->y() * uint64_t(block->z())
                  : 0;
        if (threads < 1 || threads > 1024)
          return invalid("kernel %u ('%.64s'): CUDA block of %llu threads is "
                         "outside [1, 1024]",
                         i, str(k->name()), static_cast<ull>(threads));
      }
      if (k->binding_count() > VMOE_MAX_KERNEL_BINDINGS)
        return invalid("kernel %u ('%.64s'): %u bindings exceed the limit %u",
                       i, str(k->name()), k->binding_count(),
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

  fb::ExecutableFormat executableFormat(uint32_t index) const {
    return root.executables()->Get(index)->format();
  }

  vmoe_status_t checkBinding(uint32_t d, uint32_t b,
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
      return VMOE_STATUS_OK;
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
                     static_cast<ull>(binding->length()), kind,
                     binding->index(), static_cast<ull>(limit));
    return VMOE_STATUS_OK;
  }

  uint64_t tensorBytes(uint64_t itemBytes, const fb::TensorSpec *t) const {
    // Cannot overflow: checkTensors checked the product.
    return t->batch_dim() >= 0 ? itemBytes * static_cast<uint64_t>(maxBatch)
                               : itemBytes;
  }

  vmoe_status_t checkDispatches() {
    auto *dispatches = root.dispatches();
    uint32_t kernelCount = sizeOf(root.kernels());
    uint32_t layerCount = sizeOf(root.moe_layers());
    for (uint32_t d = 0, e = sizeOf(dispatches); d < e; ++d) {
      const fb::Dispatch *dispatch = dispatches->Get(d);
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
      uint32_t constantCount = sizeOf(dispatch->push_constants());
      if (constantCount != kernel->constant_count())
        return invalid("dispatch %u: %u push constants, but kernel %u "
                       "('%.64s') takes %u",
                       d, constantCount, dispatch->kernel(),
                       str(kernel->name()), kernel->constant_count());
      if (const fb::BatchGrid *bg = dispatch->batch_grid()) {
        // At the maximum batch the grid must be the kernel's: smaller batches
        // then only ever shrink it.
        uint64_t units;
        if (bg->units_per_image() < 1 || bg->units_per_workgroup() < 1 ||
            !checkedMul(bg->units_per_image(),
                        static_cast<uint64_t>(maxBatch), &units) ||
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
      for (uint32_t c = 0; c < constantCount; ++c) {
        const fb::PushConstant *pc = dispatch->push_constants()->Get(c);
        switch (pc->source()) {
        case fb::PushConstantSource::Literal:
        case fb::PushConstantSource::BatchSize:
          break;
        case fb::PushConstantSource::MoeCapacity:
        case fb::PushConstantSource::MoeBpr:
          if (pc->layer() >= layerCount)
            return invalid("dispatch %u, push constant %u: MoE layer %u out "
                           "of range (%u layers)",
                           d, c, pc->layer(), layerCount);
          break;
        default:
          return invalid("dispatch %u, push constant %u: unknown source %u", d,
                         c, static_cast<uint32_t>(pc->source()));
        }
      }
    }
    return VMOE_STATUS_OK;
  }

  vmoe_status_t checkStatsBuffer(uint32_t i, const char *what, uint64_t offset,
                                 uint64_t count) {
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
    if (const Range *c =
            findIntersecting(arenaConstants, offset, offset + bytes))
      return invalid("MoE layer %u: %s buffer overlaps the arena copy of "
                     "constant %u",
                     i, what, c->index);
    return VMOE_STATUS_OK;
  }

  vmoe_status_t checkMoeLayers() {
    auto *layers = root.moe_layers();
    for (uint32_t i = 0, e = sizeOf(layers); i < e; ++i) {
      const fb::MoeLayer *l = layers->Get(i);
      if (l->num_experts() < 1 || l->k() < 1 || l->k() > l->num_experts())
        return invalid("MoE layer %u: k %u and %u experts need 1 <= k <= E", i,
                       l->k(), l->num_experts());
      if (l->group_size() < 1 || l->num_groups() < 1 ||
          l->tokens_per_image() < 1)
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
      double defaultCf = l->default_capacity_factor();
      double maxCf = l->max_capacity_factor();
      if (!(maxCf > 0) || !std::isfinite(maxCf) || !(defaultCf > 0) ||
          !(defaultCf <= maxCf))
        return invalid("MoE layer %u: capacity factors need 0 < default (%s) "
                       "<= maximum (%s)",
                       i, formatDouble(defaultCf).text,
                       formatDouble(maxCf).text);
      uint64_t maxCapacity;
      if (computeCapacity(l->group_size(), l->k(), l->num_experts(), maxCf,
                          &maxCapacity, message) != VMOE_STATUS_OK) {
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

  const fb::Module &root;
  const vmoe_module_header_t &header;
  const uint8_t *segmentBase;
  VerifiedModule *out;
  vmoe_message_t *message;
  uint64_t arenaSize = 0;
  int64_t maxBatch = 1;
  std::vector<Range> arenaConstants; // sorted once checkConstants is done
};

/// Prints up to four bytes as text, escaping what is not printable.
void identifierText(const uint8_t *bytes, char out[20]) {
  char *p = out;
  for (int i = 0; i < 4; ++i) {
    uint8_t c = bytes[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      *p++ = static_cast<char>(c);
    else
      p += snprintf(p, 5, "\\x%02x", c);
  }
  *p = 0;
}

} // namespace

const char *dtypeName(uint32_t dtype) {
  static const char *const names[] = {"invalid", "f32", "f16", "bf16",
                                      "f64",     "i8",  "u8",  "i16",
                                      "i32",     "i64", "bool"};
  return dtype < sizeof(names) / sizeof(names[0]) ? names[dtype] : "invalid";
}

uint64_t dtypeSize(uint32_t dtype) {
  static const uint8_t sizes[] = {0, 4, 2, 2, 8, 1, 1, 2, 4, 8, 1};
  return dtype < sizeof(sizes) ? sizes[dtype] : 0;
}

vmoe_status_t verifyModule(const uint8_t *data, uint64_t size,
                           VerifiedModule *out, vmoe_message_t *message) {
  vmoe_module_header_t &h = out->header;
  if (size < VMOE_MODULE_HEADER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is truncated: %llu bytes, smaller than the %u-byte "
                "header",
                static_cast<ull>(size), VMOE_MODULE_HEADER_SIZE);
  memcpy(&h, data, sizeof(h));
  if (memcmp(h.magic, VMOE_MODULE_MAGIC, VMOE_MODULE_MAGIC_SIZE) != 0)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "not a vmoe module: wrong magic bytes at the start of the "
                "file");
  if (h.header_size < VMOE_MODULE_HEADER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "header size %u is smaller than %u", h.header_size,
                VMOE_MODULE_HEADER_SIZE);
  // The version comes before any other field: a newer major may lay out the
  // rest differently, and the user needs to hear about the version.
  if (h.format_major != VMOE_FORMAT_VERSION_MAJOR)
    return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                "module format version %u.%u is %s than this runtime's %u.%u: "
                "%s",
                h.format_major, h.format_minor,
                h.format_major > VMOE_FORMAT_VERSION_MAJOR ? "newer" : "older",
                VMOE_FORMAT_VERSION_MAJOR, VMOE_FORMAT_VERSION_MINOR,
                h.format_major > VMOE_FORMAT_VERSION_MAJOR
                    ? "update the runtime or recompile the module with a "
                      "matching compiler"
                    : "recompile the module");
  if (h.flags != 0)
    return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                "module header has unknown flags 0x%llx",
                static_cast<ull>(h.flags));
  if (h.file_size > size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is truncated: the header says %llu bytes, got %llu",
                static_cast<ull>(h.file_size), static_cast<ull>(size));
  if (h.header_size > h.file_size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "header size %u exceeds the file size %llu", h.header_size,
                static_cast<ull>(h.file_size));
  uint64_t fbEnd;
  if (!checkedAdd(h.flatbuffer_offset, h.flatbuffer_size, &fbEnd))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer offset %llu + size %llu overflows",
                static_cast<ull>(h.flatbuffer_offset),
                static_cast<ull>(h.flatbuffer_size));
  if (h.flatbuffer_offset < h.header_size || fbEnd > h.file_size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer range [%llu, %llu) is outside the file body "
                "[%u, %llu)",
                static_cast<ull>(h.flatbuffer_offset), static_cast<ull>(fbEnd),
                h.header_size, static_cast<ull>(h.file_size));
  if (h.flatbuffer_offset % VMOE_FLATBUFFER_ALIGNMENT ||
      reinterpret_cast<uintptr_t>(data + h.flatbuffer_offset) %
          VMOE_FLATBUFFER_ALIGNMENT)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer at offset %llu is not %u-byte aligned in memory",
                static_cast<ull>(h.flatbuffer_offset),
                VMOE_FLATBUFFER_ALIGNMENT);
  if (h.flatbuffer_size < 8 || h.flatbuffer_size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer size %llu is outside [8, 2 GiB)",
                static_cast<ull>(h.flatbuffer_size));
  uint64_t segEnd;
  if (!checkedAdd(h.segment_base, h.segment_size, &segEnd))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "segment base %llu + size %llu overflows",
                static_cast<ull>(h.segment_base),
                static_cast<ull>(h.segment_size));
  if (h.segment_base < fbEnd || segEnd > h.file_size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "segment area [%llu, %llu) is outside [%llu, %llu), between "
                "the FlatBuffer and the end of the file",
                static_cast<ull>(h.segment_base), static_cast<ull>(segEnd),
                static_cast<ull>(fbEnd), static_cast<ull>(h.file_size));
  if (h.segment_base % VMOE_SEGMENT_BASE_ALIGNMENT)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "segment base %llu is not a multiple of %u",
                static_cast<ull>(h.segment_base), VMOE_SEGMENT_BASE_ALIGNMENT);

  const uint8_t *fbData = data + h.flatbuffer_offset;
  if (!flatbuffers::BufferHasIdentifier(fbData, VMOE_FLATBUFFER_IDENTIFIER)) {
    char text[20];
    identifierText(fbData + sizeof(flatbuffers::uoffset_t), text);
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "wrong FlatBuffer file identifier '%s', expected '%s'", text,
                VMOE_FLATBUFFER_IDENTIFIER);
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = VMOE_MAX_FLATBUFFER_DEPTH;
  options.max_tables = VMOE_MAX_FLATBUFFER_TABLES;
  options.check_alignment = true;
  flatbuffers::Verifier verifier(fbData, h.flatbuffer_size, options);
  if (!fb::VerifyModuleBuffer(verifier))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "the module's FlatBuffer failed structural verification "
                "(corrupt offsets, sizes or nesting)");

  out->root = fb::GetModule(fbData);
  out->segmentBase = data + h.segment_base;
  Validator validator(*out->root, h, out->segmentBase, out, message);
  return validator.run();
}

} // namespace vmoe
