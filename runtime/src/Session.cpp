//===- Session.cpp - Run a module's schedule on the CPU -------------------===//

#include "Session.h"

#include "Capacity.h"
#include "CudaBackend.h"
#include "Diagnostics.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <unistd.h>

namespace vmoe {

namespace {

using ull = unsigned long long;

constexpr uint32_t kMaxThreads = 1024;

template <typename T> uint32_t sizeOf(const flatbuffers::Vector<T> *v) {
  return v ? v->size() : 0;
}

const char *layerName(const fb::MoeLayer *layer) {
  return layer->name() ? layer->name()->c_str() : "";
}

/// Everything a worker needs to run one dispatch's workgroups.
struct DispatchRun {
  vmoe_kernel_fn_v0_t fn;
  const vmoe_dispatch_state_v0_t *state;
  uint8_t *scratch;
  uint64_t scratchStride;
  uint32_t workerCount;
  std::atomic<bool> failed{false};
  // Written once, by the thread that flips `failed`.
  uint64_t failedWorkgroup = 0;
  int failedCode = 0;
};

void runWorkgroups(void *context, uint64_t begin, uint64_t end,
                   uint32_t worker) {
  DispatchRun &run = *static_cast<DispatchRun *>(context);
  const uint32_t *grid = run.state->workgroup_count;
  vmoe_workgroup_state_v0_t wg;
  wg.worker_id = worker;
  wg.worker_count = run.workerCount;
  wg.reserved = 0;
  wg.scratch = run.scratch ? run.scratch + worker * run.scratchStride : nullptr;
  wg.scratch_size = run.scratchStride;
  uint64_t plane = static_cast<uint64_t>(grid[0]) * grid[1];
  for (uint64_t i = begin; i < end; ++i) {
    if (run.failed.load(std::memory_order_relaxed))
      return;
    wg.workgroup_id[0] = static_cast<uint32_t>(i % grid[0]);
    wg.workgroup_id[1] = static_cast<uint32_t>((i / grid[0]) % grid[1]);
    wg.workgroup_id[2] = static_cast<uint32_t>(i / plane);
    int code = run.fn(run.state, &wg);
    if (code != 0) {
      bool expected = false;
      if (run.failed.compare_exchange_strong(expected, true)) {
        run.failedWorkgroup = i;
        run.failedCode = code;
      }
      return;
    }
  }
}

vmoe_status_t mapZeroed(uint64_t size, const char *what, uint8_t **out,
                        vmoe_message_t *message) {
  *out = nullptr;
  if (size == 0)
    return VMOE_STATUS_OK;
  void *memory = size > SIZE_MAX ? MAP_FAILED
                                 : mmap(nullptr, static_cast<size_t>(size),
                                        PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY,
                "cannot allocate the %llu-byte %s", static_cast<ull>(size),
                what);
  *out = static_cast<uint8_t *>(memory);
  return VMOE_STATUS_OK;
}

uint64_t tensorBytes(uint64_t itemBytes, const fb::TensorSpec *t,
                     int64_t batch) {
  return t->batch_dim() >= 0 ? itemBytes * static_cast<uint64_t>(batch)
                             : itemBytes;
}

} // namespace

Session::~Session() {
  delete cudaBackend;
  if (arena)
    munmap(arena, static_cast<size_t>(arenaBytes));
  if (scratch)
    munmap(scratch, static_cast<size_t>(scratchBytes));
  module->release();
}

vmoe_status_t Session::create(Module *module,
                              const vmoe_session_options_t &options,
                              Session **out, vmoe_message_t *message) {
  Session *session = new (std::nothrow) Session(module);
  if (!session)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
  module->retain();
  if (vmoe_status_t status = session->init(options, message)) {
    delete session;
    return status;
  }
  *out = session;
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::init(const vmoe_session_options_t &options,
                            vmoe_message_t *message) {
  if (options.device != VMOE_DEVICE_CPU && options.device != VMOE_DEVICE_CUDA)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT, "unknown device %d",
                static_cast<int>(options.device));
  if (options.bpr < -1 || options.bpr > 1)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "BPR option %d must be -1 (default), 0 or 1", options.bpr);
  if (options.thread_count > kMaxThreads)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "thread count %u exceeds the limit %u", options.thread_count,
                kMaxThreads);
  // A session-wide factor must already be valid for every layer.
  pending.resize(sizeOf(module->root().moe_layers()));
  last.resize(pending.size());
  if (options.capacity_factor != 0) {
    if (vmoe_status_t status = resolveLayers(options.capacity_factor,
                                             options.bpr, &pending, message))
      return status;
  }
  sessionCapacityFactor = options.capacity_factor;
  sessionBpr = options.bpr;
  profiling = options.profile != 0;

  if (options.device == VMOE_DEVICE_CUDA) {
    if (vmoe_status_t status = cuda::CudaBackend::create(
            module, options.device_ordinal, nullptr, &cudaBackend, message))
      return status;
  } else if (vmoe_status_t status = module->prepareCpu(message)) {
    return status;
  }

  uint32_t threads = options.thread_count;
  if (threads == 0) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    threads = online < 1 ? 1
              : online > static_cast<long>(kMaxThreads)
                  ? kMaxThreads
                  : static_cast<uint32_t>(online);
  }

  const fb::Module &m = module->root();
  // Arena and scratch come from anonymous mappings: page-aligned (>= every
  // allowed arena alignment), zero without touching a page, and refused
  // cleanly when a file asks for more than the host can commit (a malloc
  // plus memset could instead succeed and then get the process killed).
  // The arena is zero once, so a kernel that reads before it writes sees the
  // same bytes in every session; arena constants are copied in once.
  const uint64_t arenaSize = m.arena()->size();
  if (vmoe_status_t status = mapZeroed(arenaSize, "arena", &arena, message))
    return status;
  arenaBytes = arenaSize;
  for (uint32_t i = 0, e = sizeOf(m.constants()); i < e; ++i) {
    const fb::Constant *c = m.constants()->Get(i);
    if (c->placement() == fb::ConstantPlacement::Arena)
      memcpy(arena + c->arena_offset(), module->segmentData(c->segment()),
             static_cast<size_t>(module->segmentLength(c->segment())));
  }
  if (uint64_t perWorker = module->maxScratchSize()) {
    scratchStride = (perWorker + 63) / 64 * 64; // a cache line per worker
    scratchBytes = scratchStride * threads;     // <= 256 MiB * 1024
    if (vmoe_status_t status =
            mapZeroed(scratchBytes, "kernel scratch", &scratch, message))
      return status;
  }

  // Flatten every dispatch's bindings and constants so that a run only
  // patches the call-dependent slots.
  uint32_t dispatchCount = sizeOf(m.dispatches());
  size_t bindingTotal = 0, constantTotal = 0;
  for (uint32_t d = 0; d < dispatchCount; ++d) {
    bindingTotal += sizeOf(m.dispatches()->Get(d)->bindings());
    constantTotal += sizeOf(m.dispatches()->Get(d)->push_constants());
  }
  bindings.resize(bindingTotal);
  bindingLengths.resize(bindingTotal);
  constants.resize(constantTotal);
  plans.resize(dispatchCount);
  uint32_t bindingSlot = 0, constantSlot = 0;
  for (uint32_t d = 0; d < dispatchCount; ++d) {
    const fb::Dispatch *dispatch = m.dispatches()->Get(d);
    const fb::Kernel *kernel = m.kernels()->Get(dispatch->kernel());
    Plan &plan = plans[d];
    plan.fn = cudaBackend ? nullptr : module->cpuKernel(dispatch->kernel());
    plan.kernel = dispatch->kernel();
    plan.dispatch = d;
    const fb::Dim3 *grid = kernel->workgroup_count();
    plan.workgroups = static_cast<uint64_t>(grid->x()) * grid->y() * grid->z();
    const fb::BatchGrid *batchGrid = dispatch->batch_grid();
    plan.batchUnitsPerImage = batchGrid ? batchGrid->units_per_image() : 0;
    plan.batchUnitsPerWorkgroup =
        batchGrid ? batchGrid->units_per_workgroup() : 0;
    vmoe_dispatch_state_v0_t &state = plan.state;
    state.bindings = bindings.data() + bindingSlot;
    state.binding_lengths = bindingLengths.data() + bindingSlot;
    state.binding_count = sizeOf(dispatch->bindings());
    state.constants = constants.data() + constantSlot;
    state.constant_count = sizeOf(dispatch->push_constants());
    state.workgroup_count[0] = grid->x();
    state.workgroup_count[1] = grid->y();
    state.workgroup_count[2] = grid->z();
    state.reserved = 0;
    for (uint32_t b = 0; b < state.binding_count; ++b, ++bindingSlot) {
      const fb::Binding *binding = dispatch->bindings()->Get(b);
      bindingLengths[bindingSlot] = binding->length();
      switch (binding->kind()) {
      case fb::BufferKind::Arena:
        bindings[bindingSlot] = arena + binding->offset();
        break;
      case fb::BufferKind::Constant: {
        const fb::Constant *c = m.constants()->Get(binding->index());
        const uint8_t *base = c->placement() == fb::ConstantPlacement::Arena
                                  ? arena + c->arena_offset()
                                  : module->segmentData(c->segment());
        // In-place constants are mapped read-only; the ABI says so too.
        bindings[bindingSlot] = const_cast<uint8_t *>(base) + binding->offset();
        break;
      }
      case fb::BufferKind::Input:
      case fb::BufferKind::Output:
        bindings[bindingSlot] = nullptr;
        callerBindings.push_back(
            {bindingSlot, binding->kind() == fb::BufferKind::Output,
             binding->index(), binding->offset(), binding->length()});
        break;
      }
    }
    for (uint32_t c = 0; c < state.constant_count; ++c, ++constantSlot) {
      const fb::PushConstant *pc = dispatch->push_constants()->Get(c);
      constants[constantSlot] = pc->value();
      if (pc->source() != fb::PushConstantSource::Literal)
        callConstants.push_back({constantSlot, pc->source(), pc->layer()});
    }
  }
  return pool.start(threads, message);
}

vmoe_status_t Session::resolveLayers(double capacityFactor, int32_t bpr,
                                     std::vector<LayerCall> *out,
                                     vmoe_message_t *message) const {
  const fb::Module &m = module->root();
  for (uint32_t i = 0, e = sizeOf(m.moe_layers()); i < e; ++i) {
    const fb::MoeLayer *layer = m.moe_layers()->Get(i);
    double cf =
        capacityFactor != 0 ? capacityFactor : layer->default_capacity_factor();
    if (!(cf > 0) || !(cf <= layer->max_capacity_factor()))
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "capacity factor %s is out of range for MoE layer %u "
                  "('%.64s'): it must be > 0 and <= the compiled maximum %s",
                  formatDouble(cf).text, i, layerName(layer),
                  formatDouble(layer->max_capacity_factor()).text);
    uint64_t capacity;
    if (vmoe_status_t status =
            computeCapacity(layer->group_size(), layer->k(),
                            layer->num_experts(), cf, &capacity, message)) {
      prependMessage(message, "MoE layer %u ('%.64s')", i, layerName(layer));
      return status;
    }
    LayerCall &call = (*out)[i];
    call.capacityFactor = cf;
    call.capacity =
        capacity < layer->max_capacity() ? capacity : layer->max_capacity();
    call.bpr = bpr >= 0 ? bpr : layer->default_bpr() ? 1 : 0;
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::checkTensors(const vmoe_tensor_t *tensors,
                                    uint32_t count, bool outputs,
                                    int64_t *batch,
                                    vmoe_message_t *message) const {
  const fb::Signature *sig = module->root().signature();
  auto *specs = outputs ? sig->outputs() : sig->inputs();
  const char *what = outputs ? "output" : "input";
  uint32_t expected = sizeOf(specs);
  if (count != expected)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "expected %u %ss, got %u", expected, what, count);
  if (count && !tensors)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT, "%ss are null", what);
  for (uint32_t i = 0; i < count; ++i) {
    const fb::TensorSpec *spec = specs->Get(i);
    const vmoe_tensor_t &t = tensors[i];
    const char *name = spec->name()->c_str();
    if (static_cast<uint32_t>(t.dtype) != static_cast<uint32_t>(spec->dtype()))
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "%s %u ('%.64s'): expected dtype %s, got %s", what, i, name,
                  dtypeName(static_cast<uint32_t>(spec->dtype())),
                  dtypeName(static_cast<uint32_t>(t.dtype)));
    uint32_t rank = spec->shape()->size();
    const int64_t *want = spec->shape()->data();
    int32_t batchDim = spec->batch_dim();
    bool shapeOk = t.rank == rank && (rank == 0 || t.shape);
    for (uint32_t d = 0; shapeOk && d < rank; ++d)
      shapeOk = static_cast<int32_t>(d) == batchDim || t.shape[d] == want[d];
    if (!shapeOk) {
      char batchNote[96] = "";
      if (batchDim >= 0)
        snprintf(batchNote, sizeof(batchNote),
                 " (dim %d is the batch, up to %lld)", batchDim,
                 static_cast<long long>(sig->max_batch()));
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "%s %u ('%.64s'): expected shape %s%s, got %s", what, i, name,
                  formatShape(want, rank).text, batchNote,
                  t.shape || t.rank == 0
                      ? formatShape(t.shape, t.rank > VMOE_MAX_TENSOR_RANK * 4
                                                 ? VMOE_MAX_TENSOR_RANK * 4
                                                 : t.rank)
                            .text
                      : "a null shape");
    }
    if (batchDim >= 0) {
      int64_t b = t.shape[batchDim];
      if (*batch == 0) {
        if (b < 1 || b > sig->max_batch() || b % sig->batch_multiple() != 0)
          return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                      "%s %u ('%.64s'): batch %lld must be in [1, %lld] and "
                      "a multiple of %lld",
                      what, i, name, static_cast<long long>(b),
                      static_cast<long long>(sig->max_batch()),
                      static_cast<long long>(sig->batch_multiple()));
        *batch = b;
      } else if (b != *batch) {
        return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                    "%s %u ('%.64s'): batch %lld differs from the batch %lld "
                    "of the tensors before it",
                    what, i, name, static_cast<long long>(b),
                    static_cast<long long>(*batch));
      }
    }
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::run(const vmoe_tensor_t *inputs, uint32_t inputCount,
                           const vmoe_tensor_t *outputs, uint32_t outputCount,
                           const vmoe_run_options_t *options,
                           vmoe_message_t *message) {
  const fb::Module &m = module->root();
  const fb::Signature *sig = m.signature();
  int64_t batch = 0;
  if (vmoe_status_t status =
          checkTensors(inputs, inputCount, false, &batch, message))
    return status;
  if (vmoe_status_t status =
          checkTensors(outputs, outputCount, true, &batch, message))
    return status;
  if (batch == 0)
    batch = sig->max_batch(); // no tensor has a batch dim
  // Sizes and pointers, now that the batch is known.
  for (uint32_t pass = 0; pass < 2; ++pass) {
    bool isOutput = pass == 1;
    const vmoe_tensor_t *tensors = isOutput ? outputs : inputs;
    uint32_t count = isOutput ? outputCount : inputCount;
    for (uint32_t i = 0; i < count; ++i) {
      const fb::TensorSpec *spec =
          (isOutput ? sig->outputs() : sig->inputs())->Get(i);
      uint64_t bytes = tensorBytes(isOutput ? module->outputItemBytes(i)
                                            : module->inputItemBytes(i),
                                   spec, batch);
      if (tensors[i].size_bytes < bytes || (bytes && !tensors[i].data))
        return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                    "%s %u ('%.64s'): the buffer holds %llu bytes at %p, the "
                    "tensor needs %llu",
                    isOutput ? "output" : "input", i, spec->name()->c_str(),
                    static_cast<ull>(tensors[i].size_bytes), tensors[i].data,
                    static_cast<ull>(bytes));
    }
  }
  double cf = sessionCapacityFactor;
  int32_t bpr = sessionBpr;
  if (options) {
    if (options->capacity_factor != 0)
      cf = options->capacity_factor;
    if (options->bpr < -1 || options->bpr > 1)
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "BPR option %d must be -1 (the session's), 0 or 1",
                  options->bpr);
    if (options->bpr != -1)
      bpr = options->bpr;
  }
  if (vmoe_status_t status = resolveLayers(cf, bpr, &pending, message))
    return status;

  for (const CallerBinding &cb : callerBindings) {
    const vmoe_tensor_t &t = (cb.output ? outputs : inputs)[cb.index];
    const fb::TensorSpec *spec =
        (cb.output ? sig->outputs() : sig->inputs())->Get(cb.index);
    uint64_t valid = tensorBytes(cb.output ? module->outputItemBytes(cb.index)
                                           : module->inputItemBytes(cb.index),
                                 spec, batch);
    // A smaller batch shortens the binding; kernels see the bytes that
    // exist (binding_lengths), never memory past the caller's tensor.
    uint64_t offset = cb.offset < valid ? cb.offset : valid;
    uint64_t length = valid - offset < cb.length ? valid - offset : cb.length;
    bindings[cb.slot] = static_cast<uint8_t *>(t.data) + offset;
    bindingLengths[cb.slot] = length;
  }
  for (const CallConstant &cc : callConstants) {
    switch (cc.source) {
    case fb::PushConstantSource::MoeCapacity:
      constants[cc.slot] = static_cast<int64_t>(pending[cc.layer].capacity);
      break;
    case fb::PushConstantSource::MoeBpr:
      constants[cc.slot] = pending[cc.layer].bpr;
      break;
    case fb::PushConstantSource::BatchSize:
      constants[cc.slot] = batch;
      break;
    case fb::PushConstantSource::Literal:
      break;
    }
  }

  // Grids that follow the batch; the verifier bounded them by the maximum.
  for (Plan &plan : plans) {
    if (!plan.batchUnitsPerWorkgroup)
      continue;
    uint64_t units = static_cast<uint64_t>(batch) * plan.batchUnitsPerImage;
    uint32_t x = static_cast<uint32_t>((units + plan.batchUnitsPerWorkgroup - 1) /
                                       plan.batchUnitsPerWorkgroup);
    plan.state.workgroup_count[0] = x;
    plan.workgroups = static_cast<uint64_t>(x) * plan.state.workgroup_count[1] *
                      plan.state.workgroup_count[2];
  }

  hasStats = false; // the kernels are about to overwrite the statistics
  if (cudaBackend) {
    if (vmoe_status_t status =
            cudaBackend->run(inputs, inputCount, outputs, outputCount, batch,
                             constants.data(), arena, message))
      return status;
    last.swap(pending);
    lastBatch = batch;
    hasStats = true;
    return VMOE_STATUS_OK;
  }
  if (profiling && profileNs.size() != plans.size())
    profileNs.assign(plans.size(), 0); // once: sized at the first run
  for (const Plan &plan : plans) {
    auto start = profiling ? std::chrono::steady_clock::now()
                           : std::chrono::steady_clock::time_point();
    DispatchRun dispatchRun;
    dispatchRun.fn = plan.fn;
    dispatchRun.state = &plan.state;
    dispatchRun.scratch = scratch;
    dispatchRun.scratchStride = scratchStride;
    dispatchRun.workerCount = pool.threadCount();
    pool.run(plan.workgroups, runWorkgroups, &dispatchRun);
    if (dispatchRun.failed.load()) {
      const fb::Kernel *kernel = m.kernels()->Get(plan.kernel);
      const uint32_t *grid = plan.state.workgroup_count;
      uint64_t i = dispatchRun.failedWorkgroup;
      return fail(message, VMOE_STATUS_KERNEL_FAILED,
                  "dispatch %u: kernel %u ('%.64s') failed with code %d in "
                  "workgroup (%llu,%llu,%llu)",
                  plan.dispatch, plan.kernel,
                  kernel->name() ? kernel->name()->c_str() : "",
                  dispatchRun.failedCode, static_cast<ull>(i % grid[0]),
                  static_cast<ull>((i / grid[0]) % grid[1]),
                  static_cast<ull>(i / (uint64_t(grid[0]) * grid[1])));
    }
    if (profiling)
      profileNs[plan.dispatch] += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now() - start)
              .count());
  }
  if (profiling)
    ++profileRuns;
  last.swap(pending);
  lastBatch = batch;
  hasStats = true;
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::profile(uint64_t *ns, uint32_t dispatchCount,
                               uint64_t *runs,
                               vmoe_message_t *message) const {
  if (!profiling)
    return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                "the session was created without profiling");
  if (dispatchCount != plans.size())
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "dispatch count %u does not match the module's %u",
                dispatchCount, static_cast<uint32_t>(plans.size()));
  for (uint32_t d = 0; d < dispatchCount; ++d)
    ns[d] = d < profileNs.size() ? profileNs[d] : 0;
  if (runs)
    *runs = profileRuns;
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::checkLayerStats(uint32_t layer,
                                       vmoe_message_t *message) const {
  uint32_t count = sizeOf(module->root().moe_layers());
  if (layer >= count)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "MoE layer %u out of range (%u layers)", layer, count);
  if (!module->root().moe_layers()->Get(layer)->stats())
    return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                "MoE layer %u records no routing statistics", layer);
  if (!hasStats)
    return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                "no routing statistics: the session has no successful run");
  return VMOE_STATUS_OK;
}

void Session::countAssignments(uint32_t layer, uint64_t *assigned,
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

vmoe_status_t Session::routingStats(uint32_t layer, vmoe_routing_stats_t *out,
                                    vmoe_message_t *message) const {
  if (vmoe_status_t status = checkLayerStats(layer, message))
    return status;
  const fb::MoeLayer *l = module->root().moe_layers()->Get(layer);
  vmoe_routing_stats_t stats;
  memset(&stats, 0, sizeof(stats));
  stats.capacity = static_cast<uint32_t>(last[layer].capacity);
  stats.capacity_factor = last[layer].capacityFactor;
  stats.bpr = last[layer].bpr;
  stats.num_experts = l->num_experts();
  stats.k = l->k();
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

vmoe_status_t Session::expertLoad(uint32_t layer, uint64_t *assigned,
                                  uint64_t *kept, uint32_t expertCount,
                                  vmoe_message_t *message) const {
  if (vmoe_status_t status = checkLayerStats(layer, message))
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

vmoe_status_t Session::imageCoverage(uint32_t layer, double *shares,
                                     uint32_t imageCount,
                                     vmoe_message_t *message) const {
  if (vmoe_status_t status = checkLayerStats(layer, message))
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
