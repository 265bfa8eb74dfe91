//===- Profile.h - Per-dispatch wall time of a session ----------*- C++ -*-===//
//
// A session created with `profile` set sums, per dispatch, the wall time of
// every successful run (a clock read per dispatch); the executor records
// what its device can tell apart (the CPU executor: every dispatch).
// vmoe_session_profile reads the totals.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_PROFILE_H
#define VMOE_RUNTIME_PROFILE_H

#include "vmoe/runtime.h"

#include <cstdint>
#include <vector>

namespace vmoe {

class DispatchProfile {
public:
  /// Turns profiling on for `dispatchCount` dispatches.
  void enable(uint32_t dispatchCount) {
    on = true;
    ns.assign(dispatchCount, 0);
  }
  bool enabled() const { return on; }

  /// A monotonic clock in nanoseconds, for add().
  static uint64_t now();
  /// Adds the time since `start` (a now()) to `dispatch`.
  void add(uint32_t dispatch, uint64_t start) { ns[dispatch] += now() - start; }
  /// Counts a run whose dispatches all completed.
  void endRun() { ++runs; }

  /// vmoe_session_profile: FAILED_PRECONDITION when profiling is off.
  vmoe_status_t read(uint64_t *out, uint32_t dispatchCount, uint64_t *outRuns,
                     vmoe_message_t *message) const;

private:
  bool on = false;
  std::vector<uint64_t> ns;
  uint64_t runs = 0;
};

} // namespace vmoe

#endif // VMOE_RUNTIME_PROFILE_H
