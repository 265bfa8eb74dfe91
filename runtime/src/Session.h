//===- Session.h - Run a module's schedule on a device ----------*- C++ -*-===//
//
// A session checks each call's tensors against the signature, resolves the
// call's knobs into push constants, and hands the call to the executor of
// its device (CpuExecutor, CudaExecutor). Routing statistics and profiling
// outlive the run in their own objects.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_SESSION_H
#define VMOE_RUNTIME_SESSION_H

#include "Executor.h"
#include "Knobs.h"
#include "Module.h"
#include "Profile.h"
#include "RoutingStats.h"
#include "ShardExchange.h"
#include "vmoe/runtime.h"

#include <atomic>
#include <cstdint>
#include <vector>

namespace vmoe {

class Session {
public:
  static vmoe_status_t create(Module *module,
                              const vmoe_session_options_t &options,
                              Session **out, vmoe_message_t *message);
  ~Session();

  vmoe_status_t run(const vmoe_tensor_t *inputs, uint32_t inputCount,
                    const vmoe_tensor_t *outputs, uint32_t outputCount,
                    const vmoe_run_options_t *options, vmoe_message_t *message);

  uint32_t threadCount() const { return threads; }

  vmoe_status_t profile(uint64_t *ns, uint32_t dispatchCount, uint64_t *runs,
                        vmoe_message_t *message) const {
    return dispatchProfile.read(ns, dispatchCount, runs, message);
  }

  const RoutingStats &routing() const { return stats; }

private:
  explicit Session(Module *module) : module(module) {}
  vmoe_status_t init(const vmoe_session_options_t &options,
                     vmoe_message_t *message);
  /// What this rank creates on its own (init adds the ranks' handshake).
  vmoe_status_t initLocal(const vmoe_session_options_t &options,
                          vmoe_message_t *message);
  /// The call's tensors and knobs; sets *batch and `pending`.
  vmoe_status_t checkCall(const vmoe_tensor_t *inputs, uint32_t inputCount,
                          const vmoe_tensor_t *outputs, uint32_t outputCount,
                          const vmoe_run_options_t *options, int64_t *batch,
                          vmoe_message_t *message);
  vmoe_status_t runExclusive(const vmoe_tensor_t *inputs, uint32_t inputCount,
                             const vmoe_tensor_t *outputs, uint32_t outputCount,
                             const vmoe_run_options_t *options,
                             vmoe_message_t *message);
  vmoe_status_t checkTensors(const vmoe_tensor_t *tensors, uint32_t count,
                             bool outputs, int64_t *batch,
                             vmoe_message_t *message) const;
  vmoe_status_t checkBuffers(const vmoe_tensor_t *tensors, uint32_t count,
                             bool outputs, int64_t batch,
                             vmoe_message_t *message) const;

  Module *module;
  /// An expert shard's exchange with the other ranks (inactive otherwise).
  ShardExchange exchange;
  Executor *executor = nullptr;
  /// Resolved from the options' thread_count (CPU: the pool's size).
  uint32_t threads = 0;
  Knobs knobs;
  /// Per MoE layer: this call's values.
  std::vector<LayerCall> pending;
  RoutingStats stats;
  DispatchProfile dispatchProfile;
  /// Set while a call runs; a concurrent second caller is refused.
  std::atomic<bool> busy{false};
};

} // namespace vmoe

#endif // VMOE_RUNTIME_SESSION_H
