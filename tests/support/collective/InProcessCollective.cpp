//===- InProcessCollective.cpp - Ranks as threads of one process ----------===//

#include "InProcessCollective.h"

#include <cstdio>
#include <cstring>

namespace vmoe {
namespace test {

namespace {

vmoe_status_t failWith(vmoe_message_t *message, vmoe_status_t status,
                       const char *text, uint32_t rank, uint64_t a = 0,
                       uint64_t b = 0) {
  if (message)
    snprintf(message->text, sizeof(message->text), text, rank,
             static_cast<unsigned long long>(a),
             static_cast<unsigned long long>(b));
  return status;
}

} // namespace

InProcessGroup::InProcessGroup(uint32_t size, std::chrono::milliseconds timeout)
    : ranks(size), timeout(timeout) {
  for (uint32_t r = 0; r < size; ++r) {
    Rank &rank = ranks[r];
    rank.group = this;
    rank.rank = r;
    rank.collective.user = &rank;
    rank.collective.rank = r;
    rank.collective.size = size;
    rank.collective.all_to_all = allToAll;
    rank.collective.all_gather = allGather;
    rank.collective.barrier = barrierFn;
  }
}

vmoe_status_t InProcessGroup::wait(uint32_t rank, const char *what,
                                   vmoe_message_t *message) {
  std::unique_lock<std::mutex> lock(mutex);
  if (broken)
    return failWith(message, VMOE_STATUS_FAILED_PRECONDITION,
                    "rank %u: the group failed in an earlier exchange", rank);
  uint64_t mine = generation;
  if (++arrived == ranks.size()) {
    arrived = 0;
    ++generation;
    changed.notify_all();
    return VMOE_STATUS_OK;
  }
  bool done = changed.wait_for(lock, timeout,
                               [&] { return generation != mine || broken; });
  if (done && generation != mine)
    return VMOE_STATUS_OK;
  // A rank that never comes breaks the group for everyone, at once.
  broken = true;
  changed.notify_all();
  if (message)
    snprintf(message->text, sizeof(message->text),
             "rank %u: timed out after %lld ms in %s waiting for the other "
             "ranks (one stopped or died)",
             rank, static_cast<long long>(timeout.count()), what);
  return VMOE_STATUS_FAILED_PRECONDITION;
}

vmoe_status_t InProcessGroup::exchange(Rank &self, bool toAll, const void *send,
                                       void *recv, uint64_t bytes,
                                       vmoe_message_t *message) {
  const char *what = toAll ? "all-to-all" : "all-gather";
  self.send = send;
  self.recv = recv;
  self.bytes = bytes;
  if (vmoe_status_t s = wait(self.rank, what, message))
    return s;
  // Every rank reads the others' send buffers and writes only its own
  // receive buffer; the second wait keeps the send buffers alive until all
  // have read them.
  // Sizes first: no rank reads a peer's buffer at a size it does not have.
  vmoe_status_t status = VMOE_STATUS_OK;
  for (const Rank &peer : ranks)
    if (peer.bytes != bytes) {
      status = failWith(message, VMOE_STATUS_INVALID_ARGUMENT,
                        "rank %u: a peer exchanges %llu bytes per rank, this "
                        "rank %llu",
                        self.rank, peer.bytes, bytes);
      break;
    }
  for (const Rank &peer : ranks) {
    if (status != VMOE_STATUS_OK || !bytes)
      break;
    const uint8_t *from = static_cast<const uint8_t *>(peer.send) +
                          (toAll ? self.rank * bytes : 0);
    memcpy(static_cast<uint8_t *>(recv) + peer.rank * bytes, from, bytes);
  }
  vmoe_status_t after = wait(self.rank, what, status ? nullptr : message);
  if (toAll && status == VMOE_STATUS_OK && after == VMOE_STATUS_OK)
    ++self.allToAlls;
  return status ? status : after;
}

vmoe_status_t InProcessGroup::allToAll(void *user, const void *send, void *recv,
                                       uint64_t chunk,
                                       vmoe_message_t *message) {
  Rank &self = *static_cast<Rank *>(user);
  return self.group->exchange(self, true, send, recv, chunk, message);
}

vmoe_status_t InProcessGroup::allGather(void *user, const void *send,
                                        void *recv, uint64_t bytes,
                                        vmoe_message_t *message) {
  Rank &self = *static_cast<Rank *>(user);
  return self.group->exchange(self, false, send, recv, bytes, message);
}

vmoe_status_t InProcessGroup::barrierFn(void *user, vmoe_message_t *message) {
  Rank &self = *static_cast<Rank *>(user);
  return self.group->wait(self.rank, "barrier", message);
}

} // namespace test
} // namespace vmoe
