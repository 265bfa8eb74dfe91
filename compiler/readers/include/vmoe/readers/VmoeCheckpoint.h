//===- VmoeCheckpoint.h - vmoe's sharded msgpack checkpoints ----*- C++ -*-===//
//
// Reads the checkpoints google-research/vmoe writes with
// vmoe.checkpoints.partitioned.save_checkpoint: `<prefix>.index` and
// `<prefix>.data-nnnnn-of-NNNNN`, byte format as in
// docs/vmoe-checkpoint-format.md:
//  - the index is {shard_count, index: nested maps of IndexInfo (ext 8),
//    version: '20220622'}. Leaf i of the index, in sorted key order at
//    every level (jax's flatten order), is array id i in the data shards.
//    An index without 'version' (written before 2022-06-22) has the same
//    bytes; its leaves are numbered in file order, the order the old writer
//    flattened its tree in (the same as sorted order for trees of dicts;
//    field order for a train-state dataclass).
//  - each data shard is {'__msgpack_array_chunk_a87ca2__': true, '<id>':
//    [[[ndarray ext 1, ...], SliceNd ext 6], ...], ...}; the subchunks of a
//    chunk are concatenated and placed at the chunk's global slice.
// Every chunk must be where the index says (same slice, same shard); the
// slices of a tensor must tile it exactly (no gap, no overlap).
//
// Which tensors: when the tree has a top-level "params" map (a train state),
// only the leaves under it are read and named without "params/"; otherwise
// every leaf is read (the released checkpoints hold the params tree alone).
// Shards holding no selected chunk are not opened.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_VMOECHECKPOINT_H
#define VMOE_READERS_VMOECHECKPOINT_H

#include "vmoe/readers/Tensor.h"

#include <functional>
#include <string>

namespace vmoe::readers {

/// "<prefix>.data-00001-of-00004" (vmoe.checkpoints.base.add_shard_suffix).
std::string vmoeShardPath(const std::string &prefix, uint64_t shard,
                          uint64_t shardCount);

/// Reads `<prefix>.index` and the data shards it needs. `prefix` may also
/// be given with its ".index" suffix.
bool readVmoeCheckpoint(const std::string &prefix, TensorMap &out,
                        std::string *error, const ReadOptions &options = {});

/// Supplies the bytes of data shard `shard` of `shardCount` and a name for
/// messages; the bytes must stay valid until readVmoeCheckpoint returns.
/// On failure it sets `error` (the reader adds which shard and tensor).
using VmoeShardSource =
    std::function<bool(uint64_t shard, uint64_t shardCount, ByteSpan &bytes,
                       std::string &name, std::string *error)>;

/// The same from memory (tests, fuzzing): `index` is the content of the
/// .index file, `indexName` its name in messages.
bool readVmoeCheckpoint(ByteSpan index, const std::string &indexName,
                        const VmoeShardSource &shards, TensorMap &out,
                        std::string *error, const ReadOptions &options = {});

} // namespace vmoe::readers

#endif // VMOE_READERS_VMOECHECKPOINT_H
