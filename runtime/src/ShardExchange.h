//===- ShardExchange.h - The ranks of an expert-sharded session -*- C++ -*-===//
//
// An expert-sharded module runs as one rank of several; the caller's
// collective (vmoe_collective_t) moves the bytes. This class is the
// session's side of it: the handshake at creation (every rank holds a part
// of the same compile, each part once, on as many ranks as the compile has
// parts), the per-call agreement (same batch, capacity, BPR and k on every
// rank), and the all-to-all steps. Each check gathers every rank's record
// and every rank reaches the same verdict from the same bytes, so that the
// ranks fail together instead of leaving one waiting in an exchange.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_SHARDEXCHANGE_H
#define VMOE_RUNTIME_SHARDEXCHANGE_H

#include "Knobs.h"
#include "Module.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <vector>

namespace vmoe {

class ShardExchange {
public:
  /// Takes `collective` (null: none) for `module`. A sharded module needs a
  /// well-formed collective (else an error and no exchange at all); one
  /// that is not sharded ignores it.
  vmoe_status_t init(const Module *module, const vmoe_collective_t *collective,
                     vmoe_message_t *message);
  bool active() const { return isActive; }

  /// Whether the collective agrees with the module's shard (rank, size):
  /// the session's own verdict, before the handshake.
  vmoe_status_t checkShard(vmoe_message_t *message) const;

  /// Session creation on every rank: `local` is this rank's result so far
  /// (its message in `message`). Returns an error on every rank when any
  /// rank failed or the ranks' modules do not belong together.
  vmoe_status_t handshake(vmoe_status_t local, vmoe_message_t *message);

  /// Before a call's first exchange, on every rank: `local` is this rank's
  /// result of its checks. Fails on every rank when any rank failed them or
  /// the ranks' batch or knobs differ.
  vmoe_status_t agreeOnCall(vmoe_status_t local, int64_t batch,
                            const std::vector<LayerCall> &layers,
                            vmoe_message_t *message);

  /// One all-to-all of `chunk` bytes per rank.
  vmoe_status_t allToAll(const uint8_t *send, uint8_t *recv, uint64_t chunk,
                         vmoe_message_t *message) const;

  uint32_t rank() const { return collective.rank; }
  uint32_t size() const { return collective.size; }

private:
  vmoe_status_t gather(const void *record, uint64_t bytes,
                       std::vector<uint8_t> &all, vmoe_message_t *message);
  vmoe_status_t verdict(const std::vector<uint8_t> &all, vmoe_status_t local,
                        vmoe_message_t *message) const;

  const Module *module = nullptr;
  vmoe_collective_t collective = {};
  bool isActive = false;
  std::vector<uint8_t> gathered;
};

} // namespace vmoe

#endif // VMOE_RUNTIME_SHARDEXCHANGE_H
