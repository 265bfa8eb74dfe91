//===- Executor.h - What a session asks of a device -------------*- C++ -*-===//
//
// A session checks the caller's tensors and resolves the call's knobs
// (capacity, BPR, batch) into push constants; an executor does the rest on
// its device: it loads the module's executables for that device when it is
// created, and runs the whole schedule per call. One executor per device
// (CpuExecutor, CudaExecutor), both with this shape.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_EXECUTOR_H
#define VMOE_RUNTIME_EXECUTOR_H

#include "Knobs.h"
#include "vmoe/runtime.h"

#include <cstdint>

namespace vmoe {

class DispatchProfile;

/// One call, checked and resolved by the session.
struct ExecutorCall {
  const vmoe_tensor_t *inputs;
  uint32_t inputCount;
  const vmoe_tensor_t *outputs;
  uint32_t outputCount;
  /// The call's batch (the signature's maximum when no tensor has one).
  int64_t batch;
  /// Every dispatch's push constants for this call, flattened in dispatch
  /// order.
  const int64_t *constants;
  /// Per MoE layer: the call's capacity, BPR and k (collective chunks).
  const LayerCall *layers;
};

class Executor {
public:
  virtual ~Executor() = default;

  /// Runs the schedule once. `profile` (null: off) receives per-dispatch
  /// times where the device can tell them apart.
  virtual vmoe_status_t run(const ExecutorCall &call, DispatchProfile *profile,
                            vmoe_message_t *message) = 0;

  /// The arena as the host sees it after a successful run: where the
  /// routing statistics of the call are read (same offsets as the module's
  /// arena plan).
  virtual const uint8_t *hostArena() const = 0;
};

/// Anonymous, zeroed, page-aligned host memory (mmap): zero without touching
/// a page, and refused cleanly when a file asks for more than the host can
/// commit (a malloc plus memset could instead succeed and then get the
/// process killed). *out is null for size 0.
vmoe_status_t mapZeroed(uint64_t size, const char *what, uint8_t **out,
                        vmoe_message_t *message);
/// Releases what mapZeroed returned (null: nothing).
void unmapZeroed(uint8_t *memory, uint64_t size);

} // namespace vmoe

#endif // VMOE_RUNTIME_EXECUTOR_H
