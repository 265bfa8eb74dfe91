//===- CheckpointFuzzer.cpp - Fuzz the msgpack and vmoe checkpoint reader ===//
//
// Input: u32le index size, the index file, then any number of shards as u32le
// size + bytes (tests/fuzz/make_seeds.py packs real checkpoints this way).
// The msgpack parser runs on the index and on every shard on its own; the
// checkpoint reader then assembles the tensors through an in-memory shard
// source. Sizes past the input are clamped, so every input is meaningful.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/Msgpack.h"
#include "vmoe/readers/VmoeCheckpoint.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace vmoe::readers;

namespace {

/// Walks every value, as a consumer of the document would.
void walk(const msgpack::Document &doc, const msgpack::Value &v, int depth) {
  if (depth > 80)
    __builtin_trap(); // the parser's depth limit must hold
  if (v.kind == msgpack::Kind::Array) {
    for (size_t i = 0; i < v.count; ++i)
      walk(doc, doc.item(v, i), depth + 1);
  } else if (v.kind == msgpack::Kind::Map) {
    for (size_t i = 0; i < v.count; ++i) {
      walk(doc, doc.key(v, i), depth + 1);
      walk(doc, doc.value(v, i), depth + 1);
    }
    (void)doc.find(v, "version");
  } else if (v.data && v.size) {
    volatile uint8_t sink = v.data[0] ^ v.data[v.size - 1];
    (void)sink;
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
  msgpack::Document doc;
  std::string error;
  if (doc.parse(index, &error, limits))
    walk(doc, doc.root(), 0);
  for (const ByteSpan &shard : shards)
    if (doc.parse(shard, &error, limits)) // the Document is reused
      walk(doc, doc.root(), 0);

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
