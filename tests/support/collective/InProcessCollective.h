//===- InProcessCollective.h - Ranks as threads of one process --*- C++ -*-===//
//
// A vmoe_collective_t for tests: N ranks are N threads of one process that
// share a group. Each exchange publishes the callers' buffers, waits for all
// ranks (a barrier), copies, and waits again so that no rank reuses a buffer
// another still reads. Every wait has a deadline: a rank that never comes
// (a "dead" rank) makes the others fail with a message instead of hanging,
// and the group stays failed after that, as a broken MPI job would.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_TESTS_SUPPORT_COLLECTIVE_INPROCESSCOLLECTIVE_H
#define VMOE_TESTS_SUPPORT_COLLECTIVE_INPROCESSCOLLECTIVE_H

#include "vmoe/runtime.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace vmoe {
namespace test {

class InProcessGroup {
public:
  explicit InProcessGroup(uint32_t size, std::chrono::milliseconds timeout =
                                             std::chrono::seconds(20));
  InProcessGroup(const InProcessGroup &) = delete;
  InProcessGroup &operator=(const InProcessGroup &) = delete;

  /// Rank `rank`'s collective; valid as long as the group.
  const vmoe_collective_t *collective(uint32_t rank) const {
    return &ranks[rank].collective;
  }
  uint32_t size() const { return static_cast<uint32_t>(ranks.size()); }
  /// Exchanges each rank made (all-to-all, all-gather, barrier).
  uint64_t allToAllCount(uint32_t rank) const { return ranks[rank].allToAlls; }

private:
  struct Rank {
    InProcessGroup *group;
    uint32_t rank;
    vmoe_collective_t collective;
    // Published for the exchange under way.
    const void *send = nullptr;
    void *recv = nullptr;
    uint64_t bytes = 0;
    uint64_t allToAlls = 0;
  };

  static vmoe_status_t allToAll(void *user, const void *send, void *recv,
                                uint64_t chunk, vmoe_message_t *message);
  static vmoe_status_t allGather(void *user, const void *send, void *recv,
                                 uint64_t bytes, vmoe_message_t *message);
  static vmoe_status_t barrierFn(void *user, vmoe_message_t *message);

  vmoe_status_t wait(uint32_t rank, const char *what, vmoe_message_t *message);
  vmoe_status_t exchange(Rank &self, bool toAll, const void *send, void *recv,
                         uint64_t bytes, vmoe_message_t *message);

  std::vector<Rank> ranks;
  std::chrono::milliseconds timeout;
  std::mutex mutex;
  std::condition_variable changed;
  uint32_t arrived = 0;
  uint64_t generation = 0;
  bool broken = false;
};

} // namespace test
} // namespace vmoe

#endif // VMOE_TESTS_SUPPORT_COLLECTIVE_INPROCESSCOLLECTIVE_H
