//===- Profile.cpp - Per-dispatch wall time of a session ------------------===//

#include "Profile.h"

#include "Diagnostics.h"

#include <chrono>

namespace vmoe {

uint64_t DispatchProfile::now() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

vmoe_status_t DispatchProfile::read(uint64_t *out, uint32_t dispatchCount,
                                    uint64_t *outRuns,
                                    vmoe_message_t *message) const {
  if (!on)
    return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                "the session was created without profiling");
  if (dispatchCount != ns.size())
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "dispatch count %u does not match the module's %u",
                dispatchCount, static_cast<uint32_t>(ns.size()));
  for (uint32_t d = 0; d < dispatchCount; ++d)
    out[d] = ns[d];
  if (outRuns)
    *outRuns = runs;
  return VMOE_STATUS_OK;
}

} // namespace vmoe
