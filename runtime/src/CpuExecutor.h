//===- CpuExecutor.h - Run a module's schedule on the host CPU --*- C++ -*-===//
//
// Loads the module's shared objects (Module::prepareCpu, once per module),
// then owns an arena, per-worker scratch, a thread pool and every
// per-dispatch array the kernels see; a run only rewrites values in place
// and splits each dispatch's workgroups over the pool.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_CPUEXECUTOR_H
#define VMOE_RUNTIME_CPUEXECUTOR_H

#include "Executor.h"
#include "Module.h"
#include "ShardExchange.h"
#include "ThreadPool.h"
#include "vmoe/kernel_abi.h"

#include <cstdint>
#include <vector>

namespace vmoe {

class CpuExecutor final : public Executor {
public:
  /// Loads the module's CPU code and prepares every dispatch, run on
  /// `threadCount` threads (the caller's included). `exchange` runs the
  /// collective steps of an expert shard (null for other modules).
  static vmoe_status_t create(Module *module, uint32_t threadCount,
                              const ShardExchange *exchange, CpuExecutor **out,
                              vmoe_message_t *message);
  ~CpuExecutor() override;

  vmoe_status_t run(const ExecutorCall &call, DispatchProfile *profile,
                    vmoe_message_t *message) override;
  const uint8_t *hostArena() const override { return arena; }

private:
  /// One dispatch, ready to go: its kernel state points into the flat
  /// binding/constant arrays below.
  struct Plan {
    vmoe_kernel_fn_v0_t fn;
    uint32_t kernel;
    uint32_t dispatch;
    uint64_t workgroups;
    vmoe_dispatch_state_v0_t state;
    /// Grid x per call when it follows the batch (0: fixed grid).
    uint64_t batchUnitsPerImage, batchUnitsPerWorkgroup;
    /// The kernel's compiled grid x: a batch grid never goes past it.
    uint64_t maxGridX;
    /// Non-null: an all-to-all step of an expert shard (fn is null).
    const fb::Collective *collective;
  };
  /// An input/output binding, re-pointed every run at the caller's buffer.
  struct CallerBinding {
    uint32_t slot;
    bool output;
    uint32_t index;
    uint64_t offset;
    uint64_t length;
  };

  CpuExecutor(Module *module, const ShardExchange *exchange)
      : module(module), exchange(exchange) {}
  vmoe_status_t init(uint32_t threadCount, vmoe_message_t *message);
  vmoe_status_t allocate(uint32_t threadCount, vmoe_message_t *message);
  vmoe_status_t copyConstants(vmoe_message_t *message);
  void plan();
  void bind(const ExecutorCall &call);
  vmoe_status_t runPlan(const Plan &plan, vmoe_message_t *message);
  vmoe_status_t runCollective(const Plan &plan, const ExecutorCall &call,
                              vmoe_message_t *message);

  Module *module;
  const ShardExchange *exchange;
  ThreadPool pool;
  uint8_t *arena = nullptr;
  uint64_t arenaBytes = 0;
  uint8_t *scratch = nullptr;
  uint64_t scratchBytes = 0;
  uint64_t scratchStride = 0;
  /// Arena-placed constants, read-only once copied.
  uint8_t *constantCopies = nullptr;
  uint64_t constantCopyBytes = 0;
  std::vector<uint64_t> constantCopyOffsets;

  std::vector<Plan> plans;
  std::vector<void *> bindings;
  std::vector<uint64_t> bindingLengths;
  std::vector<int64_t> constants;
  std::vector<CallerBinding> callerBindings;
};

} // namespace vmoe

#endif // VMOE_RUNTIME_CPUEXECUTOR_H
