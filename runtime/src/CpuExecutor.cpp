//===- CpuExecutor.cpp - Run a module's schedule on the host CPU ----------===//

#include "CpuExecutor.h"

#include "Diagnostics.h"
#include "Profile.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <sys/mman.h>

namespace vmoe {

namespace {

using ull = unsigned long long;

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

} // namespace

vmoe_status_t CpuExecutor::create(Module *module, uint32_t threadCount,
                                  const ShardExchange *exchange,
                                  CpuExecutor **out, vmoe_message_t *message) {
  if (module->root().expert_shard() && !exchange)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "an expert shard needs the ranks' collective");
  auto *executor = new (std::nothrow) CpuExecutor(module, exchange);
  if (!executor)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
  if (vmoe_status_t status = executor->init(threadCount, message)) {
    delete executor;
    return status;
  }
  *out = executor;
  return VMOE_STATUS_OK;
}

CpuExecutor::~CpuExecutor() {
  unmapZeroed(arena, arenaBytes);
  unmapZeroed(constantCopies, constantCopyBytes);
  unmapZeroed(scratch, scratchBytes);
}

vmoe_status_t CpuExecutor::init(uint32_t threadCount, vmoe_message_t *message) {
  if (vmoe_status_t status = module->prepareCpu(message))
    return status;
  if (vmoe_status_t status = allocate(threadCount, message))
    return status;
  plan();
  return pool.start(threadCount, message);
}

vmoe_status_t CpuExecutor::allocate(uint32_t threadCount,
                                    vmoe_message_t *message) {
  const fb::Module &m = module->root();
  // The arena is zero once, so a kernel that reads before it writes sees the
  // same bytes in every session; arena constants are copied in once.
  const uint64_t arenaSize = m.arena()->size();
  if (vmoe_status_t status = mapZeroed(arenaSize, "arena", &arena, message))
    return status;
  arenaBytes = arenaSize;
  if (vmoe_status_t status = copyConstants(message))
    return status;
  if (uint64_t perWorker = module->maxScratchSize()) {
    scratchStride = (perWorker + 63) / 64 * 64; // a cache line per worker
    scratchBytes = scratchStride * threadCount; // <= 256 MiB * 1024
    if (vmoe_status_t status =
            mapZeroed(scratchBytes, "kernel scratch", &scratch, message))
      return status;
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t CpuExecutor::copyConstants(vmoe_message_t *message) {
  // Arena-placed constants are copied once into a mapping of their own that
  // is then made read-only: a kernel that writes through a constant binding
  // faults instead of changing the weights of every later run. (No kernel
  // reaches them through the arena: the verifier refuses arena bindings
  // that overlap their arena ranges.)
  const fb::Module &m = module->root();
  uint32_t count = sizeOf(m.constants());
  constantCopyOffsets.assign(count, 0);
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const fb::Constant *c = m.constants()->Get(i);
    if (c->placement() != fb::ConstantPlacement::Arena)
      continue;
    // Both bounded by the segment area and the alignment by 4096: no
    // overflow.
    uint64_t align = m.segments()->Get(c->segment())->alignment();
    total = (total + align - 1) / align * align;
    constantCopyOffsets[i] = total;
    total += module->segmentLength(c->segment());
  }
  if (vmoe_status_t status =
          mapZeroed(total, "copy of the constants", &constantCopies, message))
    return status;
  constantCopyBytes = total;
  for (uint32_t i = 0; i < count; ++i) {
    const fb::Constant *c = m.constants()->Get(i);
    if (c->placement() == fb::ConstantPlacement::Arena)
      memcpy(constantCopies + constantCopyOffsets[i],
             module->segmentData(c->segment()),
             static_cast<size_t>(module->segmentLength(c->segment())));
  }
  if (constantCopies &&
      mprotect(constantCopies, static_cast<size_t>(total), PROT_READ) != 0)
    return fail(message, VMOE_STATUS_INTERNAL,
                "cannot make the copy of the constants read-only: %s",
                strerror(errno));
  return VMOE_STATUS_OK;
}

void CpuExecutor::plan() {
  // Flatten every dispatch's bindings and constants so that a run only
  // patches the call-dependent slots.
  const fb::Module &m = module->root();
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
    Plan &plan = plans[d];
    plan.dispatch = d;
    plan.collective = dispatch->collective();
    if (plan.collective) {
      // No kernel: the validator made its index meaningless and left it
      // unchecked, and the step has no bindings or constants.
      plan.fn = nullptr;
      plan.kernel = 0;
      plan.workgroups = 0;
      plan.batchUnitsPerImage = plan.batchUnitsPerWorkgroup = 0;
      plan.maxGridX = 0;
      memset(&plan.state, 0, sizeof(plan.state));
      continue;
    }
    const fb::Kernel *kernel = m.kernels()->Get(dispatch->kernel());
    plan.fn = module->cpuKernel(dispatch->kernel());
    plan.kernel = dispatch->kernel();
    const fb::Dim3 *grid = kernel->workgroup_count();
    plan.workgroups = static_cast<uint64_t>(grid->x()) * grid->y() * grid->z();
    const fb::BatchGrid *batchGrid = dispatch->batch_grid();
    plan.batchUnitsPerImage = batchGrid ? batchGrid->units_per_image() : 0;
    plan.batchUnitsPerWorkgroup =
        batchGrid ? batchGrid->units_per_workgroup() : 0;
    plan.maxGridX = grid->x();
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
    constantSlot += state.constant_count;
    for (uint32_t b = 0; b < state.binding_count; ++b, ++bindingSlot) {
      const fb::Binding *binding = dispatch->bindings()->Get(b);
      bindingLengths[bindingSlot] = binding->length();
      switch (binding->kind()) {
      case fb::BufferKind::Arena:
        bindings[bindingSlot] = arena + binding->offset();
        break;
      case fb::BufferKind::Constant: {
        const fb::Constant *c = m.constants()->Get(binding->index());
        const uint8_t *base =
            c->placement() == fb::ConstantPlacement::Arena
                ? constantCopies + constantCopyOffsets[binding->index()]
                : module->segmentData(c->segment());
        // Read-only memory (the copies, a module mapped from a file); the
        // ABI says so too.
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
  }
}

void CpuExecutor::bind(const ExecutorCall &call) {
  for (const CallerBinding &cb : callerBindings) {
    const vmoe_tensor_t &t = (cb.output ? call.outputs : call.inputs)[cb.index];
    uint64_t valid = cb.output ? module->outputBytes(cb.index, call.batch)
                               : module->inputBytes(cb.index, call.batch);
    // A smaller batch shortens the binding; kernels see the bytes that
    // exist (binding_lengths), never memory past the caller's tensor.
    uint64_t offset = cb.offset < valid ? cb.offset : valid;
    uint64_t length = valid - offset < cb.length ? valid - offset : cb.length;
    bindings[cb.slot] = static_cast<uint8_t *>(t.data) + offset;
    bindingLengths[cb.slot] = length;
  }
  if (!constants.empty())
    memcpy(constants.data(), call.constants,
           constants.size() * sizeof(int64_t));

  // Grids that follow the batch; the verifier bounded them by the maximum.
  for (Plan &plan : plans) {
    if (!plan.batchUnitsPerWorkgroup)
      continue;
    uint64_t units =
        static_cast<uint64_t>(call.batch) * plan.batchUnitsPerImage;
    uint64_t wanted =
        (units + plan.batchUnitsPerWorkgroup - 1) / plan.batchUnitsPerWorkgroup;
    // Never past the kernel's compiled grid, whatever the batch.
    uint32_t x =
        static_cast<uint32_t>(wanted < plan.maxGridX ? wanted : plan.maxGridX);
    plan.state.workgroup_count[0] = x;
    plan.workgroups = static_cast<uint64_t>(x) * plan.state.workgroup_count[1] *
                      plan.state.workgroup_count[2];
  }
}

vmoe_status_t CpuExecutor::runPlan(const Plan &plan, vmoe_message_t *message) {
  DispatchRun dispatchRun;
  dispatchRun.fn = plan.fn;
  dispatchRun.state = &plan.state;
  dispatchRun.scratch = scratch;
  dispatchRun.scratchStride = scratchStride;
  dispatchRun.workerCount = pool.threadCount();
  pool.run(plan.workgroups, runWorkgroups, &dispatchRun);
  if (!dispatchRun.failed.load())
    return VMOE_STATUS_OK;
  const fb::Kernel *kernel = module->root().kernels()->Get(plan.kernel);
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

vmoe_status_t CpuExecutor::runCollective(const Plan &plan,
                                         const ExecutorCall &call,
                                         vmoe_message_t *message) {
  // The contract's chunk: G groups of the call's batch, C its capacity. No
  // overflow: the validator bounded both regions at the maximum batch and
  // capacity, which bound G and C.
  const fb::Collective *c = plan.collective;
  const fb::MoeLayer *layer = module->root().moe_layers()->Get(c->layer());
  uint64_t tokens =
      static_cast<uint64_t>(call.batch) * layer->tokens_per_image();
  uint64_t groups = (tokens + layer->group_size() - 1) / layer->group_size();
  uint64_t capacity = call.layers[c->layer()].capacity;
  uint64_t chunk =
      c->group_bytes() * groups + c->slot_bytes() * groups * capacity;
  if (vmoe_status_t status = exchange->allToAll(
          arena + c->send_offset(), arena + c->recv_offset(), chunk, message)) {
    prependMessage(message, "dispatch %u (all-to-all of MoE layer %u)",
                   plan.dispatch, c->layer());
    return status;
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t CpuExecutor::run(const ExecutorCall &call,
                               DispatchProfile *profile,
                               vmoe_message_t *message) {
  bind(call);
  for (const Plan &plan : plans) {
    uint64_t start = profile ? DispatchProfile::now() : 0;
    if (vmoe_status_t status = plan.collective
                                   ? runCollective(plan, call, message)
                                   : runPlan(plan, message))
      return status;
    if (profile)
      profile->add(plan.dispatch, start);
  }
  if (profile)
    profile->endRun();
  return VMOE_STATUS_OK;
}

} // namespace vmoe
