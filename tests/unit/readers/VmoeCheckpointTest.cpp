//===- VmoeCheckpointTest.cpp - vmoe .index + .data-* reader --------------===//

#include "TestUtil.h"

#include "vmoe/readers/MsgpackObject.h"
#include "vmoe/readers/VmoeCheckpoint.h"

#include <cstdio>
#include <set>
#include <sys/stat.h>

namespace vmoe::readers::test {
namespace {

constexpr const char *kMagic = "__msgpack_array_chunk_a87ca2__";

/// {shard_count, index: {name: IndexInfo}, version}.
Bytes makeIndex(const std::vector<std::pair<std::string, Bytes>> &leaves,
                int64_t shardCount = 1, const char *version = "20220622") {
  Mp m;
  m.map(version ? 3 : 2).str("shard_count").i(shardCount).str("index");
  m.map(leaves.size());
  for (auto &[name, payload] : leaves)
    m.str(name).ext(8, payload);
  if (version)
    m.str("version").str(version);
  return m.b;
}

using Chunk =
    std::pair<std::vector<std::pair<int64_t, int64_t>>, std::vector<float>>;

/// {magic: true, "<id>": [[[ndarray], SliceNd], ...], ...}.
Bytes makeShard(
    const std::vector<std::pair<std::string, std::vector<Chunk>>> &arrays,
    const std::string &dtype = "float32") {
  Mp m;
  m.map(1 + arrays.size()).str(kMagic).boolean(true);
  for (auto &[id, chunks] : arrays) {
    m.str(id).arr(chunks.size());
    for (auto &[slice, values] : chunks)
      m.arr(2)
          .arr(1)
          .ext(1, ndarrayPayload(values, dtype))
          .ext(6, sliceNdPayload(slice));
  }
  return m.b;
}

/// A 2x3 float32 tensor "w" in one chunk.
Bytes simpleIndex() {
  return makeIndex(
      {{"w", indexInfoPayload({2, 3}, "float32", {{{0, 2}, {0, 3}}}, {0})}});
}
Bytes simpleShard() {
  return makeShard({{"0", {{{{0, 2}, {0, 3}}, {1, 2, 3, 4, 5, 6}}}}});
}

// ---- the byte examples of the format doc
// -------------------------------------------

Bytes fromHex(const std::string &hex) {
  Bytes out;
  for (size_t i = 0; i < hex.size();) {
    if (hex[i] == ' ') {
      ++i;
      continue;
    }
    out.push_back(uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
    i += 2;
  }
  return out;
}

// vmoe-checkpoint-format.md, ".index" and ".data-i-of-N" examples:
// {'b': f32[2,3] = arange(6), 'a': {'s': int32 scalar 7}}.
const char *kDocIndex =
    "83 ab 73 68 61 72 64 5f 63 6f 75 6e 74 01 a5 69 6e 64 65 78 82"
    " a1 61 81 a1 73 c7 13 08 93 c4 0a 94 90 a5 69 6e 74 33 32 c2 80"
    " 91 c4 01 90 91 00"
    " a1 62 c7 23 08 93 c4 0e 94 92 02 03 a7 66 6c 6f 61 74 33 32 c2 80"
    " 91 c4 0d 92 c4 04 93 00 02 c0 c4 04 93 00 03 c0 91 00"
    " a7 76 65 72 73 69 6f 6e a8 32 30 32 32 30 36 32 32";

Bytes docData() {
  Mp m;
  m.map(3).str(kMagic).boolean(true);
  m.str("0").arr(1).arr(2).arr(1);
  m.raw(fromHex("c7 0f 01 93 91 01 a5 69 6e 74 33 32 c4 04 07 00 00 00"));
  m.raw(fromHex("d4 06 90"));
  m.str("1").arr(1).arr(2).arr(1);
  m.raw(fromHex("c7 25 01 93 91 06 a7 66 6c 6f 61 74 33 32 c4 18"));
  m.raw(floatBytes({0, 1, 2, 3, 4, 5}));
  m.raw(fromHex("c7 0d 06 92 c4 04 93 00 02 c0 c4 04 93 00 03 c0"));
  return m.b;
}

TEST(VmoeCheckpoint, ReadsTheFormatDocExample) {
  Bytes index = fromHex(kDocIndex), data = docData();
  ASSERT_EQ(index.size(), 105u);
  ASSERT_EQ(data.size(), 120u);
  TensorMap out;
  std::string error;
  // The int32 scalar is not a parameter type.
  EXPECT_FAILS_WITH(readCheckpoint(index, {data}, out, error), error,
                    "tensor 'a/s' has dtype 'int32'");
  ReadOptions options;
  options.skipNonFloat = true;
  out.clear();
  ASSERT_TRUE(readCheckpoint(index, {data}, out, error, options)) << error;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out["b"].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(out["b"].data, (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

// ---- the generated checkpoints
// -------------------------------------------------------

TEST(VmoeCheckpoint, ReadsOneShard) {
  REQUIRE_TEST_DATA();
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readVmoeCheckpoint(dataPath("tiny_ckpt"), out, &error)) << error;
  expectTinyWeights(out, DType::F32);
  // The ".index" path is accepted as well.
  TensorMap again;
  ASSERT_TRUE(readVmoeCheckpoint(dataPath("tiny_ckpt.index"), again, &error))
      << error;
  EXPECT_EQ(again.size(), out.size());
}

/// The IndexInfo of `path` ("a/b/c") in an index file: slices and shards.
void indexEntry(const Bytes &index, const std::string &path, size_t &slices,
                std::set<int64_t> &shards) {
  mp::Document doc, info;
  std::string error;
  ASSERT_TRUE(doc.parse(span(index), &error)) << error;
  const mp::Object *node = mp::find(doc.root(), "index");
  for (size_t start = 0; node;) {
    size_t slash = path.find('/', start);
    node = mp::find(*node, path.substr(start, slash - start));
    if (slash == std::string::npos)
      break;
    start = slash + 1;
  }
  ASSERT_NE(node, nullptr) << path;
  ASSERT_TRUE(info.parse(mp::bytes(*node), &error)) << error;
  slices = mp::size(mp::item(info.root(), 1));
  const mp::Object &ids = mp::item(info.root(), 2);
  for (size_t i = 0; i < mp::size(ids); ++i) {
    int64_t id = -1;
    ASSERT_TRUE(mp::toInt64(mp::item(ids, i), id));
    shards.insert(id);
  }
}

TEST(VmoeCheckpoint, ReadsShardedChunkedArrays) {
  REQUIRE_TEST_DATA();
  // 2 processes x 2 devices, experts split 4 ways, 3 shards, 96-byte chunks.
  Bytes index = readFile(dataPath("tiny_ckpt_sharded.index"));
  size_t slices = 0;
  std::set<int64_t> shards;
  indexEntry(index, "Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel", slices,
             shards);
  EXPECT_GT(slices, 4u); // 4 expert blocks, each split further
  EXPECT_GE(shards.size(), 2u);
  for (int s = 0; s < 3; ++s)
    EXPECT_FALSE(
        readFile(vmoeShardPath(dataPath("tiny_ckpt_sharded"), s, 3)).empty());
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readVmoeCheckpoint(dataPath("tiny_ckpt_sharded"), out, &error))
      << error;
  expectTinyWeights(out, DType::F32);
}

TEST(VmoeCheckpoint, ConcatenatesSubchunks) {
  REQUIRE_TEST_DATA();
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readVmoeCheckpoint(dataPath("tiny_ckpt_subchunks"), out, &error))
      << error;
  expectTinyWeights(out, DType::F32);
}

TEST(VmoeCheckpoint, ReadsUnversionedIndex) {
  REQUIRE_TEST_DATA();
  Bytes index = readFile(dataPath("tiny_ckpt_unversioned.index"));
  mp::Document doc;
  std::string error;
  ASSERT_TRUE(doc.parse(span(index), &error)) << error;
  EXPECT_EQ(mp::find(doc.root(), "version"), nullptr);
  TensorMap out;
  ASSERT_TRUE(
      readVmoeCheckpoint(dataPath("tiny_ckpt_unversioned"), out, &error))
      << error;
  expectTinyWeights(out, DType::F32);
}

TEST(VmoeCheckpoint, ReadsOnlyTheParamsOfATrainState) {
  REQUIRE_TEST_DATA();
  // {opt_state: {...}, params: {...}, step: int32}: the array ids count the
  // opt_state leaves first.
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readVmoeCheckpoint(dataPath("tiny_ckpt_trainstate"), out, &error))
      << error;
  expectTinyWeights(out, DType::F32);
}

TEST(VmoeCheckpoint, ReadsBfloat16Parameters) {
  REQUIRE_TEST_DATA();
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readVmoeCheckpoint(dataPath("tiny_ckpt_bf16"), out, &error))
      << error;
  expectTinyWeights(out, DType::BF16);
}

TEST(VmoeCheckpoint, ScalarAndZeroSizeArrays) {
  Bytes index = makeIndex(
      {{"s", indexInfoPayload({}, "float32", {{}}, {0})},
       {"z", indexInfoPayload({0, 3}, "float32", {{{0, 0}, {0, 3}}}, {0})}});
  Mp m;
  m.map(3).str(kMagic).boolean(true);
  m.str("0").arr(1).arr(2).arr(1).ext(1, ndarrayPayload({2.5f}));
  m.ext(6, Mp().arr(0).b);
  m.str("1").arr(1).arr(2).arr(0).ext(6, sliceNdPayload({{0, 0}, {0, 3}}));
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readCheckpoint(index, {m.b}, out, error)) << error;
  EXPECT_TRUE(out["s"].shape.empty());
  EXPECT_EQ(out["s"].data, std::vector<float>{2.5f});
  EXPECT_EQ(out["z"].shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(out["z"].data.empty());
}

TEST(VmoeCheckpoint, AssemblesTwoDimensionalChunks) {
  // A 4x4 tensor in four 2x2 chunks over two shards.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> slices = {
      {{0, 2}, {0, 2}}, {{0, 2}, {2, 4}}, {{2, 4}, {0, 2}}, {{2, 4}, {2, 4}}};
  Bytes index = makeIndex(
      {{"w", indexInfoPayload({4, 4}, "float32", slices, {0, 1, 1, 0})}}, 2);
  auto block = [](int r0, int c0) {
    std::vector<float> v;
    for (int r = r0; r < r0 + 2; ++r)
      for (int c = c0; c < c0 + 2; ++c)
        v.push_back(float(4 * r + c));
    return v;
  };
  Bytes shard0 =
      makeShard({{"0", {{slices[0], block(0, 0)}, {slices[3], block(2, 2)}}}});
  Bytes shard1 =
      makeShard({{"0", {{slices[1], block(0, 2)}, {slices[2], block(2, 0)}}}});
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readCheckpoint(index, {shard0, shard1}, out, error)) << error;
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(out["w"].data[i], float(i));
}

TEST(VmoeCheckpoint, ArrayIdOrder) {
  // Keys written out of order. V1: ids follow jax's flatten order, sorted
  // by code point ("x10" < "x2" < "y"); un-versioned: the file order.
  Bytes leaf = indexInfoPayload({1}, "float32", {{{0, 1}}}, {0});
  Bytes shard = makeShard({{"0", {{{{0, 1}}, {0}}}},
                           {"1", {{{{0, 1}}, {1}}}},
                           {"2", {{{{0, 1}}, {2}}}}});
  for (bool v1 : {true, false}) {
    Mp m;
    m.map(v1 ? 3 : 2).str("shard_count").i(1);
    if (v1)
      m.str("version").str("20220622");
    m.str("index").map(3).str("y").ext(8, leaf).str("x2").ext(8, leaf);
    m.str("x10").ext(8, leaf);
    TensorMap out;
    std::string error;
    ASSERT_TRUE(readCheckpoint(m.b, {shard}, out, error)) << error;
    EXPECT_EQ(out["x10"].data, std::vector<float>{v1 ? 0.0f : 2.0f});
    EXPECT_EQ(out["x2"].data, std::vector<float>{1});
    EXPECT_EQ(out["y"].data, std::vector<float>{v1 ? 2.0f : 0.0f});
  }
}

TEST(VmoeCheckpoint, ReadsUnversionedTrainStateInFieldOrder) {
  REQUIRE_TEST_DATA();
  // Written the pre-2022-06-22 way from a TrainState(step, params,
  // opt_state) dataclass: the top level in field order.
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readVmoeCheckpoint(dataPath("tiny_ckpt_unversioned_trainstate"),
                                 out, &error))
      << error;
  expectTinyWeights(out, DType::F32);
}

// ---- malformed checkpoints
// -------------------------------------------------------------

TEST(VmoeCheckpoint, MissingShardFile) {
  REQUIRE_TEST_DATA();
  std::string dir = std::string(VMOE_READERS_TEST_DATA) + "/missing_shard";
  mkdir(dir.c_str(), 0755);
  writeFile(dir + "/ckpt.index", readFile(dataPath("tiny_ckpt_sharded.index")));
  for (int s = 0; s < 2; ++s)
    writeFile(vmoeShardPath(dir + "/ckpt", s, 3),
              readFile(vmoeShardPath(dataPath("tiny_ckpt_sharded"), s, 3)));
  std::remove(vmoeShardPath(dir + "/ckpt", 2, 3).c_str());
  TensorMap out;
  std::string error;
  EXPECT_FAILS_WITH(readVmoeCheckpoint(dir + "/ckpt", out, &error), error,
                    "data shard 2 of 3");
  EXPECT_NE(error.find("ckpt.data-00002-of-00003"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  // A missing index.
  EXPECT_FAILS_WITH(readVmoeCheckpoint(dir + "/nothing", out, &error), error,
                    "cannot open '" + dir + "/nothing.index'");
}

TEST(VmoeCheckpoint, TruncatedIndexAtSeveralPoints) {
  REQUIRE_TEST_DATA();
  Bytes index = readFile(dataPath("tiny_ckpt_sharded.index"));
  std::vector<Bytes> shards;
  for (int s = 0; s < 3; ++s)
    shards.push_back(
        readFile(vmoeShardPath(dataPath("tiny_ckpt_sharded"), s, 3)));
  for (size_t cut : {size_t(0), size_t(1), size_t(17), index.size() / 3,
                     index.size() / 2, index.size() - 1}) {
    Bytes truncated(index.begin(), index.begin() + cut);
    TensorMap out;
    std::string error;
    EXPECT_FAILS_WITH(readCheckpoint(truncated, shards, out, error), error,
                      "mem.index: truncated");
  }
}

TEST(VmoeCheckpoint, TruncatedShardAtSeveralPoints) {
  REQUIRE_TEST_DATA();
  Bytes index = readFile(dataPath("tiny_ckpt_sharded.index"));
  std::vector<Bytes> shards;
  for (int s = 0; s < 3; ++s)
    shards.push_back(
        readFile(vmoeShardPath(dataPath("tiny_ckpt_sharded"), s, 3)));
  Bytes whole = shards[1];
  for (size_t cut : {size_t(0), size_t(5), size_t(40), whole.size() / 2,
                     whole.size() - 7, whole.size() - 1}) {
    shards[1].assign(whole.begin(), whole.begin() + cut);
    TensorMap out;
    std::string error;
    EXPECT_FAILS_WITH(readCheckpoint(index, shards, out, error), error,
                      "mem.data-00001-of-00003: truncated");
  }
}

TEST(VmoeCheckpoint, WrongMagic) {
  TensorMap out;
  std::string error;
  // A data shard without the ArrayChunks magic key.
  Bytes shard = simpleShard();
  shard[2] ^= 0x20; // "__msgpack..." -> "_\x7fmsgpack..."
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "mem.data-00000-of-00001: not a vmoe data shard");
  // An index that is not a map, or lacks the keys.
  EXPECT_FAILS_WITH(readCheckpoint(Mp().arr(0).b, {}, out, error), error,
                    "mem.index: not a vmoe checkpoint index");
  EXPECT_FAILS_WITH(
      readCheckpoint(Mp().map(1).str("shards").i(1).b, {}, out, error), error,
      "no 'shard_count' or no 'index' key");
  // Another format altogether (a ZIP).
  EXPECT_FAILS_WITH(readCheckpoint(makeZip({{"a.npy", {}}}), {}, out, error),
                    error, "mem.index: ");
  // Unknown version.
  EXPECT_FAILS_WITH(
      readCheckpoint(makeIndex({}, 1, "20990101"), {}, out, error), error,
      "unsupported checkpoint version '20990101'");
}

TEST(VmoeCheckpoint, ForgedLengths) {
  TensorMap out;
  std::string error;
  // A map of 2^32-1 pairs in a few bytes: refused before reserving.
  EXPECT_FAILS_WITH(
      readCheckpoint(Mp().byte(0xdf).be(0xffffffff, 4).b, {}, out, error),
      error,
      "mem.index: truncated: a map of 4294967295 pairs (8589934590 values) "
      "cannot fit in the 5 bytes of the msgpack data");
  // A bin claiming 4 GB.
  Bytes index = Mp().map(1).str("x").byte(0xc6).be(0xfffffff0, 4).b;
  EXPECT_FAILS_WITH(
      readCheckpoint(index, {}, out, error), error,
      "mem.index: truncated: the 8 bytes end inside a msgpack value");
  // An ext32 claiming more than the file, inside a shard.
  Bytes shard = Mp().map(2)
                    .str(kMagic)
                    .boolean(true)
                    .str("0")
                    .arr(1)
                    .arr(2)
                    .arr(1)
                    .byte(0xc9)
                    .be(0x7fffffff, 4)
                    .byte(1)
                    .b;
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "mem.data-00000-of-00001: truncated");
  // The ndarray of a chunk claims more elements than its bytes.
  Bytes nd = Mp().arr(3)
                 .arr(1)
                 .i(1000000)
                 .str("float32")
                 .bin(floatBytes({1, 2, 3, 4, 5, 6}))
                 .b;
  shard = Mp().map(2)
              .str(kMagic)
              .boolean(true)
              .str("0")
              .arr(1)
              .arr(2)
              .arr(1)
              .ext(1, nd)
              .ext(6, sliceNdPayload({{0, 2}, {0, 3}}))
              .b;
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "an ndarray of 1000000 elements holds 24 bytes");
}

TEST(VmoeCheckpoint, ForgedShapesAndSlices) {
  TensorMap out;
  std::string error;
  auto index = [](std::vector<int64_t> shape,
                  std::vector<std::vector<std::pair<int64_t, int64_t>>> s,
                  std::vector<int64_t> shards, int64_t count = 1) {
    return makeIndex({{"w", indexInfoPayload(shape, "float32", s, shards)}},
                     count);
  };
  // A huge shape, backed by a tiny chunk: no allocation, a clear error.
  int64_t huge = int64_t(1) << 40;
  Bytes shard =
      makeShard({{"0", {{{{0, huge}}, std::vector<float>{1, 2, 3}}}}});
  EXPECT_FAILS_WITH(
      readCheckpoint(index({huge}, {{{0, huge}}}, {0}), {shard}, out, error),
      error, "hold 12 bytes, the slice needs 4398046511104");
  EXPECT_FAILS_WITH(
      readCheckpoint(index({huge, huge}, {{{0, huge}, {0, huge}}}, {0}),
                     {shard}, out, error),
      error, "has too many elements");
  // Slices that leave a gap, overlap, or leave the shape.
  EXPECT_FAILS_WITH(readCheckpoint(index({4}, {{{0, 3}}}, {0}), {}, out, error),
                    error, "the slices cover 3 of the 4 elements");
  EXPECT_FAILS_WITH(
      readCheckpoint(index({4}, {{{0, 3}}, {{2, 4}}}, {0, 0}), {}, out, error),
      error, "overlapping slices");
  EXPECT_FAILS_WITH(readCheckpoint(index({4}, {{{0, 5}}}, {0}), {}, out, error),
                    error, "slice [0:5] is outside the shape (4,)");
  EXPECT_FAILS_WITH(
      readCheckpoint(index({4}, {{{0, 2}, {0, 1}}}, {0}), {}, out, error),
      error, "has 2 axes, the shape (4,) has 1");
  // Equal total volume but overlapping chunks: caught while placing.
  shard = makeShard({{"0", {{{{0, 3}}, {1, 2, 3}}, {{{1, 2}}, {9}}}}});
  EXPECT_FAILS_WITH(readCheckpoint(index({4}, {{{0, 3}}, {{1, 2}}}, {0, 0}),
                                   {shard}, out, error),
                    error, "chunks of 'w' overlap");
  // A shard id outside shard_count, and a mismatched list.
  EXPECT_FAILS_WITH(
      readCheckpoint(index({4}, {{{0, 4}}}, {5}, 2), {}, out, error), error,
      "is not in [0, shard_count = 2)");
  EXPECT_FAILS_WITH(
      readCheckpoint(index({4}, {{{0, 4}}}, {0, 0}), {}, out, error), error,
      "1 slices but 2 shard ids");
  EXPECT_FAILS_WITH(
      readCheckpoint(index({4}, {{{0, 4}}, {{0, 4}}}, {0, 0}), {}, out, error),
      error, "overlapping slices");
}

TEST(VmoeCheckpoint, ChunksMustMatchTheIndex) {
  TensorMap out;
  std::string error;
  // A chunk the index does not list.
  Bytes shard = makeShard({{"0", {{{{0, 1}, {0, 3}}, {1, 2, 3}}}}});
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "holds a chunk at [0:1, 0:3] that the index does not list");
  // The chunk twice.
  shard = makeShard({{"0",
                      {{{{0, 2}, {0, 3}}, {1, 2, 3, 4, 5, 6}},
                       {{{0, 2}, {0, 3}}, {1, 2, 3, 4, 5, 6}}}}});
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "holds the chunk [0:2, 0:3] twice");
  // No chunk at all.
  shard = makeShard({});
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "the chunk [0:2, 0:3] of 'w' is missing");
  // In another shard than the index says: "v" belongs in shard 1.
  Bytes index = makeIndex(
      {{"v", indexInfoPayload({2}, "float32", {{{0, 2}}}, {1})},
       {"w", indexInfoPayload({2, 3}, "float32", {{{0, 2}, {0, 3}}}, {0})}},
      2);
  shard = makeShard({{"0", {{{{0, 2}}, {7, 8}}}},
                     {"1", {{{{0, 2}, {0, 3}}, {1, 2, 3, 4, 5, 6}}}}});
  EXPECT_FAILS_WITH(readCheckpoint(index, {shard, makeShard({})}, out, error),
                    error,
                    "mem.data-00000-of-00002: 'v': holds the chunk [0:2] that "
                    "the index places in shard 1");
  // A subchunk of another dtype.
  shard =
      makeShard({{"0", {{{{0, 2}, {0, 3}}, {1, 2, 3, 4, 5, 6}}}}}, "float16");
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "a subchunk has dtype 'float16', the index says 'float32'");
  // Too few bytes for the slice.
  shard = makeShard({{"0", {{{{0, 2}, {0, 3}}, {1, 2, 3}}}}});
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "hold 12 bytes, the slice needs 24");
  // An array id past the index.
  shard =
      makeShard({{"0", {{{{0, 2}, {0, 3}}, {1, 2, 3, 4, 5, 6}}}}, {"7", {}}});
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "array id 7 is past the 1 arrays of the index");
  shard = makeShard({{"x", {}}});
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "key 'x' is not an array id");
}

TEST(VmoeCheckpoint, WrongDtype) {
  TensorMap out;
  std::string error;
  for (const char *dtype : {"int32", "complex64", "uint8"}) {
    Bytes index =
        makeIndex({{"w", indexInfoPayload({2}, dtype, {{{0, 2}}}, {0})}});
    EXPECT_FAILS_WITH(readCheckpoint(index, {}, out, error), error,
                      std::string("tensor 'w' has dtype '") + dtype + "'");
  }
}

TEST(VmoeCheckpoint, NestingBombs) {
  TensorMap out;
  std::string error;
  // 100000 nested one-element arrays.
  Bytes bomb(100000, 0x91);
  bomb.push_back(0xc0);
  EXPECT_FAILS_WITH(readCheckpoint(bomb, {}, out, error), error,
                    "msgpack nesting deeper than 64 levels");
  // Nested maps in the index tree.
  Mp m;
  m.map(2).str("shard_count").i(1).str("index");
  for (int i = 0; i < 200; ++i)
    m.map(1).str("a");
  m.nil();
  EXPECT_FAILS_WITH(readCheckpoint(m.b, {}, out, error), error,
                    "nesting deeper than 64");
  // Too many values for the limit.
  ReadOptions options;
  options.limits.maxValues = 1000;
  Mp wide;
  wide.byte(0xdc).be(5000, 2);
  for (int i = 0; i < 5000; ++i)
    wide.nil();
  EXPECT_FAILS_WITH(readCheckpoint(wide.b, {}, out, error, options), error,
                    "more than 1000 msgpack values");
}

TEST(VmoeCheckpoint, DuplicateKeys) {
  TensorMap out;
  std::string error;
  Bytes index = Mp().map(3)
                    .str("shard_count")
                    .i(1)
                    .str("shard_count")
                    .i(2)
                    .str("index")
                    .map(0)
                    .b;
  EXPECT_FAILS_WITH(readCheckpoint(index, {}, out, error), error,
                    "duplicate key 'shard_count' in the top-level map");
  Bytes leaf = indexInfoPayload({2}, "float32", {{{0, 2}}}, {0});
  index = Mp().map(2)
              .str("shard_count")
              .i(1)
              .str("index")
              .map(1)
              .str("a")
              .map(2)
              .str("kernel")
              .ext(8, leaf)
              .str("kernel")
              .ext(8, leaf)
              .b;
  EXPECT_FAILS_WITH(readCheckpoint(index, {}, out, error), error,
                    "duplicate key 'kernel' in 'a'");
  Bytes shard =
      Mp().map(3).str(kMagic).boolean(true).str("0").arr(0).str("0").arr(0).b;
  EXPECT_FAILS_WITH(readCheckpoint(simpleIndex(), {shard}, out, error), error,
                    "mem.data-00000-of-00001: duplicate key '0'");
  // Names that collide once "params/" is stripped never arise from one
  // tree; a key with '/' would make names ambiguous.
  index = makeIndex({{"a/b", leaf}});
  EXPECT_FAILS_WITH(readCheckpoint(index, {}, out, error), error,
                    "index key 'a/b' under the index tree is empty or "
                    "contains '/'");
}

TEST(VmoeCheckpoint, BadIndexInfo) {
  TensorMap out;
  std::string error;
  // A leaf that is not ext 8.
  Bytes index =
      Mp().map(2).str("shard_count").i(1).str("index").map(1).str("w").i(3).b;
  EXPECT_FAILS_WITH(readCheckpoint(index, {}, out, error), error,
                    "index entry 'w' is int, expected an IndexInfo");
  index = makeIndex({{"w", Mp().arr(2).nil().nil().b}});
  EXPECT_FAILS_WITH(readCheckpoint(index, {}, out, error), error,
                    "IndexInfo of 'w': expected [ShapedArray, [SliceNd...], "
                    "[shard...]]");
  // A strided slice.
  Bytes slice = Mp().arr(3).i(0).i(4).i(2).b;
  Bytes sliceNd = Mp().arr(1).bin(slice).b;
  Bytes sa = Mp().arr(4).arr(1).i(4).str("float32").boolean(false).map(0).b;
  index =
      makeIndex({{"w", Mp().arr(3).bin(sa).arr(1).bin(sliceNd).arr(1).i(0).b}});
  EXPECT_FAILS_WITH(readCheckpoint(index, {}, out, error), error,
                    "a Slice has a step other than nil");
  // shard_count out of range.
  EXPECT_FAILS_WITH(readCheckpoint(makeIndex({}, 0), {}, out, error), error,
                    "'shard_count' must be an integer in [1, ");
}

} // namespace
} // namespace vmoe::readers::test
