//===- CheckpointFuzzer.cpp - Fuzz the msgpack and vmoe checkpoint reader ===//
//
// Input: u32le index size, the index file, then any number of shards as u32le
// size + bytes (tests/fuzz/make_seeds.py packs real checkpoints this way).
// The msgpack parser (msgpack-cxx under the readers' limits) runs on the
// index and on every shard on its own; the checkpoint reader then assembles
// the tensors through an in-memory shard source. Sizes past the input are
// clamped, so every input is meaningful.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/MsgpackObject.h"
#include "vmoe/readers/VmoeCheckpoint.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace vmoe::readers;

namespace {

/// Walks every value, as a consumer of the document would.
void walk(const mp::Object &v, int depth, uint64_t &count) {
  if (depth > 80)
    __builtin_trap(); // the parser's depth limit must hold
  if (++count > (1u << 16))
    __builtin_trap(); // and its value limit
  if (v.type == mp::Type::ARRAY) {
    for (size_t i = 0; i < mp::size(v); ++i)
      walk(mp::item(v, i), depth + 1, count);
  } else if (v.type == mp::Type::MAP) {
    for (size_t i = 0; i < mp::size(v); ++i) {
      walk(mp::key(v, i), depth + 1, count);
      walk(mp::value(v, i), depth + 1, count);
    }
    (void)mp::find(v, "version");
  } else {
    ByteSpan b = mp::bytes(v);
    if (b.size) {
      volatile uint8_t sink = b.data[0] ^ b.data[b.size - 1];
      (void)sink;
    }
  }
}

ByteSpan take(const uint8_t *&data, size_t &size) {
  uint32_t n = 0;
  if (size >= 4) {
    memcpy(&n, data, 4);
    data += 4;
    size -= 4;
  }
  if (n > size)
    n = uint32_t(size);
  ByteSpan span{data, n};
  data += n;
  size -= n;
  return span;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ByteSpan index = take(data, size);
  std::vector<ByteSpan> shards;
  while (size > 0 && shards.size() < 16)
    shards.push_back(take(data, size));

  ReadLimits limits;
  limits.maxValues = 1 << 16;
  mp::Document doc;
  std::string error;
  uint64_t count = 0;
  if (doc.parse(index, &error, limits))
    walk(doc.root(), 0, count);
  for (const ByteSpan &shard : shards) {
    count = 0;
    if (doc.parse(shard, &error, limits)) // the Document is reused
      walk(doc.root(), 0, count);
  }

  auto source = [&](uint64_t shard, uint64_t shardCount, ByteSpan &bytes,
                    std::string &name, std::string *sourceError) {
    name =
        "shard-" + std::to_string(shard) + "-of-" + std::to_string(shardCount);
    if (shard >= shards.size()) {
      *sourceError = "no such shard: " + name;
      return false;
    }
    bytes = shards[shard];
    return true;
  };
  TensorMap tensors;
  ReadOptions options;
  options.limits = limits;
  options.skipNonFloat = index.size % 2;
  (void)readVmoeCheckpoint(index, "fuzz.index", source, tensors, &error,
                           options);
  return 0;
}
