//===- ShardExchange.cpp - The ranks of an expert-sharded session ---------===//

#include "ShardExchange.h"

#include "Diagnostics.h"

#include <cstring>

namespace vmoe {

namespace {

using ull = unsigned long long;

// Tags that tell a record from bytes of another program or version.
constexpr uint32_t kHandshakeMagic = 0x31485356; // "VSH1"
constexpr uint32_t kCallMagic = 0x31435356;      // "VSC1"

/// What each rank tells the others at session creation.
struct HandshakeRecord {
  uint32_t magic;
  uint32_t status;
  uint32_t rank;
  uint32_t size;
  uint32_t sharded;
  uint32_t shardRank;
  uint32_t shardSize;
  uint32_t reserved;
  uint64_t modelId[2];
  uint64_t digest[2];
};

/// What each rank tells the others before a call's first exchange.
struct CallRecord {
  uint32_t magic;
  uint32_t status;
  int64_t batch;
  /// Every layer's capacity factor, capacity, BPR and k.
  uint64_t layerHash;
  /// Layer 0's, for the message.
  double capacityFactor;
  uint64_t capacity;
  int32_t bpr;
  uint32_t k;
};

/// FNV-1a: the records only need to tell settings apart, not resist forgery.
void mix(uint64_t &hash, const void *data, size_t bytes) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  for (size_t i = 0; i < bytes; ++i)
    hash = (hash ^ p[i]) * 0x100000001b3ull;
}

uint64_t hashLayers(const std::vector<LayerCall> &layers) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const LayerCall &l : layers) {
    mix(hash, &l.capacityFactor, sizeof(l.capacityFactor));
    mix(hash, &l.capacity, sizeof(l.capacity));
    mix(hash, &l.bpr, sizeof(l.bpr));
    mix(hash, &l.k, sizeof(l.k));
  }
  return hash;
}

const char *statusName(uint32_t status) {
  return vmoe_status_name(static_cast<vmoe_status_t>(status));
}

} // namespace

vmoe_status_t ShardExchange::init(const Module *m, const vmoe_collective_t *c,
                                  vmoe_message_t *message) {
  module = m;
  if (!m->root().expert_shard())
    return VMOE_STATUS_OK; // nothing to exchange
  const fb::ExpertShard *shard = m->root().expert_shard();
  if (!c)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "the module is rank %u of %u expert shards and needs a "
                "collective (vmoe_session_options_t.collective; vmoe-run: run "
                "it under mpirun)",
                shard->rank(), shard->size());
  if (!c->all_to_all || !c->all_gather || !c->barrier)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "the collective lacks a function (all_to_all, all_gather and "
                "barrier are all needed)");
  if (c->size < 1 || c->rank >= c->size)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "the collective's rank %u is out of range (%u ranks)", c->rank,
                c->size);
  collective = *c;
  isActive = true;
  return VMOE_STATUS_OK;
}

vmoe_status_t ShardExchange::checkShard(vmoe_message_t *message) const {
  const fb::ExpertShard *shard = module->root().expert_shard();
  if (shard->size() != collective.size)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "the module is one of %u expert shards, but the job has %u "
                "ranks: run it on %u",
                shard->size(), collective.size, shard->size());
  if (shard->rank() != collective.rank)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "the module is expert shard %u, but this process is rank %u",
                shard->rank(), collective.rank);
  return VMOE_STATUS_OK;
}

vmoe_status_t ShardExchange::gather(const void *record, uint64_t bytes,
                                    std::vector<uint8_t> &all,
                                    vmoe_message_t *message) {
  all.assign(bytes * collective.size, 0);
  vmoe_message_t why;
  why.text[0] = 0;
  vmoe_status_t status =
      collective.all_gather(collective.user, record, all.data(), bytes, &why);
  if (status == VMOE_STATUS_OK)
    return status;
  why.text[sizeof(why.text) - 1] = 0;
  if (status < VMOE_STATUS_OK || status > VMOE_STATUS_PERMISSION_DENIED)
    status = VMOE_STATUS_INTERNAL;
  return fail(message, status, "all-gather failed: %s", why.text);
}

vmoe_status_t ShardExchange::handshake(vmoe_status_t local,
                                       vmoe_message_t *message) {
  const fb::ExpertShard *shard = module->root().expert_shard();
  HandshakeRecord mine;
  memset(&mine, 0, sizeof(mine));
  mine.magic = kHandshakeMagic;
  mine.status = static_cast<uint32_t>(local);
  mine.rank = collective.rank;
  mine.size = collective.size;
  mine.sharded = 1;
  mine.shardRank = shard->rank();
  mine.shardSize = shard->size();
  mine.modelId[0] = shard->model_id()->low();
  mine.modelId[1] = shard->model_id()->high();
  mine.digest[0] = module->header().metadata_digest[0];
  mine.digest[1] = module->header().metadata_digest[1];
  // A failed gather leaves this rank's own error in the message when it had
  // one: that is the cause, the exchange only its consequence.
  if (vmoe_status_t status =
          gather(&mine, sizeof(mine), gathered,
                 local == VMOE_STATUS_OK ? message : nullptr))
    return local != VMOE_STATUS_OK ? local : status;
  return verdict(gathered, local, message);
}

vmoe_status_t ShardExchange::verdict(const std::vector<uint8_t> &all,
                                     vmoe_status_t local,
                                     vmoe_message_t *message) const {
  uint32_t n = collective.size;
  std::vector<HandshakeRecord> records(n);
  memcpy(records.data(), all.data(), sizeof(HandshakeRecord) * n);
  for (uint32_t j = 0; j < n; ++j) {
    const HandshakeRecord &r = records[j];
    if (r.magic != kHandshakeMagic || r.rank != j || r.size != n)
      return fail(message, VMOE_STATUS_INTERNAL,
                  "the collective delivered a malformed "
                  "handshake from rank %u (another program or vmoe version, "
                  "or a broken collective)",
                  j);
  }
  // Every rank checks the same records in the same order: the same verdict
  // everywhere, with the cause named from each rank's side.
  for (uint32_t j = 0; j < n; ++j)
    if (records[j].shardSize != n)
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "rank %u holds a module of %u expert shards, "
                  "but the job has %u ranks; compile %u shards or run %u "
                  "ranks",
                  j, records[j].shardSize, n, n, records[j].shardSize);
  for (uint32_t j = 1; j < n; ++j)
    if (records[j].modelId[0] != records[0].modelId[0] ||
        records[j].modelId[1] != records[0].modelId[1])
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "rank %u holds a part of another model "
                  "(model id %016llx%016llx, rank 0's is %016llx%016llx); "
                  "every rank must load a shard of the same compile",
                  j, static_cast<ull>(records[j].modelId[1]),
                  static_cast<ull>(records[j].modelId[0]),
                  static_cast<ull>(records[0].modelId[1]),
                  static_cast<ull>(records[0].modelId[0]));
  // Shard ranks are below n here (each equals its rank's count, and a
  // module's rank is below its count): a table of first holders.
  std::vector<uint32_t> holder(n, UINT32_MAX);
  for (uint32_t j = 0; j < n; ++j) {
    uint32_t shard = records[j].shardRank;
    if (shard < n && holder[shard] != UINT32_MAX)
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "ranks %u and %u both hold expert shard %u; each shard "
                  "must run exactly once",
                  holder[shard], j, shard);
    if (shard < n)
      holder[shard] = j;
  }
  for (uint32_t j = 0; j < n; ++j)
    if (records[j].shardRank != j)
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "rank %u holds expert shard %u; shard R "
                  "must run on rank R",
                  j, records[j].shardRank);
  if (local != VMOE_STATUS_OK)
    return local; // this rank's own message says why
  for (uint32_t j = 0; j < n; ++j)
    if (records[j].status != VMOE_STATUS_OK)
      return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                  "rank %u could not create its session (%s; "
                  "its own output says why), so no rank runs",
                  j, statusName(records[j].status));
  return VMOE_STATUS_OK;
}

vmoe_status_t ShardExchange::agreeOnCall(vmoe_status_t local, int64_t batch,
                                         const std::vector<LayerCall> &layers,
                                         vmoe_message_t *message) {
  CallRecord mine;
  memset(&mine, 0, sizeof(mine));
  mine.magic = kCallMagic;
  mine.status = static_cast<uint32_t>(local);
  if (local == VMOE_STATUS_OK) {
    mine.batch = batch;
    mine.layerHash = hashLayers(layers);
    if (!layers.empty()) {
      mine.capacityFactor = layers[0].capacityFactor;
      mine.capacity = layers[0].capacity;
      mine.bpr = layers[0].bpr;
      mine.k = layers[0].k;
    }
  }
  if (vmoe_status_t status =
          gather(&mine, sizeof(mine), gathered,
                 local == VMOE_STATUS_OK ? message : nullptr))
    return local != VMOE_STATUS_OK ? local : status;
  if (local != VMOE_STATUS_OK)
    return local;
  uint32_t n = collective.size;
  std::vector<CallRecord> records(n);
  memcpy(records.data(), gathered.data(), sizeof(CallRecord) * n);
  for (uint32_t j = 0; j < n; ++j) {
    const CallRecord &r = records[j];
    if (r.magic != kCallMagic)
      return fail(message, VMOE_STATUS_INTERNAL,
                  "the collective delivered a malformed call "
                  "record from rank %u",
                  j);
    if (r.status != VMOE_STATUS_OK)
      return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                  "rank %u's call failed its checks (%s; its "
                  "own output says why), so no rank runs it",
                  j, statusName(r.status));
  }
  for (uint32_t j = 0; j < n; ++j) {
    const CallRecord &r = records[j];
    if (r.batch != batch)
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "rank %u runs a batch of %lld, this rank "
                  "%lld; every rank of an expert-sharded model must run the "
                  "same batch",
                  j, static_cast<long long>(r.batch),
                  static_cast<long long>(batch));
    if (r.layerHash != mine.layerHash)
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "rank %u runs its MoE layers with other "
                  "settings (layer 0: capacity factor %s, capacity %llu, BPR "
                  "%d, k %u; this rank: %s, %llu, %d, %u); every rank must "
                  "run the same capacity factor, BPR and k",
                  j, formatDouble(r.capacityFactor).text,
                  static_cast<ull>(r.capacity), r.bpr, r.k,
                  formatDouble(mine.capacityFactor).text,
                  static_cast<ull>(mine.capacity), mine.bpr, mine.k);
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t ShardExchange::allToAll(const uint8_t *send, uint8_t *recv,
                                      uint64_t chunk,
                                      vmoe_message_t *message) const {
  vmoe_message_t why;
  why.text[0] = 0;
  vmoe_status_t status =
      collective.all_to_all(collective.user, send, recv, chunk, &why);
  if (status == VMOE_STATUS_OK)
    return status;
  why.text[sizeof(why.text) - 1] = 0;
  if (status < VMOE_STATUS_OK || status > VMOE_STATUS_PERMISSION_DENIED)
    status = VMOE_STATUS_INTERNAL;
  return fail(message, status, "all-to-all of %llu bytes per rank failed: %s",
              static_cast<ull>(chunk), why.text);
}

} // namespace vmoe
