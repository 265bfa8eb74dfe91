//===- Session.h - Run a module's schedule on the CPU -----------*- C++ -*-===//
#ifndef VMOE_RUNTIME_SESSION_H
#define VMOE_RUNTIME_SESSION_H

#include "Module.h"
#include "ThreadPool.h"
#include "vmoe/kernel_abi.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <vector>

namespace vmoe {
namespace cuda {
class CudaBackend;
} // namespace cuda

/// Owns an arena, per-worker scratch, a thread pool and every per-dispatch
/// array the kernels see; a run only rewrites values in place.
class Session {
public:
  static vmoe_status_t create(Module *module,
                              const vmoe_session_options_t &options,
                              Session **out, vmoe_message_t *message);
  ~Session();

  vmoe_status_t run(const vmoe_tensor_t *inputs, uint32_t inputCount,
                    const vmoe_tensor_t *outputs, uint32_t outputCount,
                    const vmoe_run_options_t *options, vmoe_message_t *message);

  uint32_t threadCount() const { return pool.threadCount(); }

  vmoe_status_t profile(uint64_t *ns, uint32_t dispatchCount, uint64_t *runs,
                        vmoe_message_t *message) const;

  vmoe_status_t routingStats(uint32_t layer, vmoe_routing_stats_t *out,
                             vmoe_message_t *message) const;
  vmoe_status_t expertLoad(uint32_t layer, uint64_t *assigned, uint64_t *kept,
                           uint32_t expertCount, vmoe_message_t *message) const;
  vmoe_status_t imageCoverage(uint32_t layer, double *shares,
                              uint32_t imageCount,
                              vmoe_message_t *message) const;

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
  };
  /// An input/output binding, re-pointed every run at the caller's buffer.
  struct CallerBinding {
    uint32_t slot;
    bool output;
    uint32_t index;
    uint64_t offset;
    uint64_t length;
  };
  /// A push constant whose value depends on the call.
  struct CallConstant {
    uint32_t slot;
    fb::PushConstantSource source;
    uint32_t layer;
  };
  struct LayerCall {
    double capacityFactor;
    uint64_t capacity;
    int32_t bpr;
  };

  explicit Session(Module *module) : module(module) {}
  vmoe_status_t init(const vmoe_session_options_t &options,
                     vmoe_message_t *message);
  vmoe_status_t checkTensors(const vmoe_tensor_t *tensors, uint32_t count,
                             bool outputs, int64_t *batch,
                             vmoe_message_t *message) const;
  vmoe_status_t checkLayerStats(uint32_t layer, vmoe_message_t *message) const;
  vmoe_status_t resolveLayers(double capacityFactor, int32_t bpr,
                              std::vector<LayerCall> *out,
                              vmoe_message_t *message) const;
  void countAssignments(uint32_t layer, uint64_t *assigned, uint64_t *kept,
                        uint64_t *perExpertAssigned,
                        uint64_t *perExpertKept) const;

  Module *module;
  /// VMOE_DEVICE_CUDA: runs the schedule instead of the thread pool.
  cuda::CudaBackend *cudaBackend = nullptr;
  ThreadPool pool;
  uint8_t *arena = nullptr;
  uint64_t arenaBytes = 0;
  uint8_t *scratch = nullptr;
  uint64_t scratchBytes = 0;
  uint64_t scratchStride = 0;
  double sessionCapacityFactor = 0;
  int32_t sessionBpr = -1;

  std::vector<Plan> plans;
  /// Per-dispatch nanoseconds over the successful runs (profiling only).
  bool profiling = false;
  std::vector<uint64_t> profileNs;
  uint64_t profileRuns = 0;
  std::vector<void *> bindings;
  std::vector<uint64_t> bindingLengths;
  std::vector<int64_t> constants;
  std::vector<CallerBinding> callerBindings;
  std::vector<CallConstant> callConstants;

  /// Per MoE layer: this call's values, and the last successful call's.
  std::vector<LayerCall> pending;
  std::vector<LayerCall> last;
  int64_t lastBatch = 0;
  bool hasStats = false;
};

} // namespace vmoe

#endif // VMOE_RUNTIME_SESSION_H
