//===- TestUtil.h - helpers for the reader tests ----------------*- C++ -*-===//
//
// Files written by tests/import/make_checkpoints.py (at build time, into
// VMOE_READERS_TEST_DATA), the "pattern" values it writes, the parameter
// names of its tiny model, and small byte builders for forged inputs.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TESTS_UNIT_READERS_TESTUTIL_H
#define VMOE_TESTS_UNIT_READERS_TESTUTIL_H

#include "vmoe/readers/Tensor.h"
#include "vmoe/readers/VmoeCheckpoint.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace vmoe::readers::test {

using Bytes = std::vector<uint8_t>;

inline std::string dataPath(const std::string &name) {
  return std::string(VMOE_READERS_TEST_DATA) + "/" + name;
}

inline Bytes readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

inline void writeFile(const std::string &path, const Bytes &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            std::streamsize(bytes.size()));
}

inline Bytes toBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

inline ByteSpan span(const Bytes &b) { return {b.data(), b.size()}; }

/// The generated files exist (the build writes them).
#define REQUIRE_TEST_DATA()                                                    \
  do {                                                                         \
    if (readFile(dataPath("stamp")).empty())                                   \
      GTEST_SKIP() << "test checkpoints missing in " VMOE_READERS_TEST_DATA;   \
  } while (0)

/// `ok` is false and the error mentions `substring`.
#define EXPECT_FAILS_WITH(ok, error, substring)                                \
  do {                                                                         \
    EXPECT_FALSE(ok);                                                          \
    EXPECT_NE((error).find(substring), std::string::npos)                      \
        << "error: " << (error) << "\nexpected to contain: " << (substring);   \
  } while (0)

/// make_checkpoints.py pattern_values: ((7 j + h) % 101 - 50) / 64.
inline float patternValue(const std::string &name, uint64_t j) {
  uint64_t h = 0;
  for (size_t i = 0; i < name.size(); ++i)
    h += (i + 1) * uint8_t(name[i]);
  h %= 97;
  return float((int64_t((7 * j + h) % 101) - 50) / 64.0);
}

/// make_checkpoints.py TINY: 8x8 images, 4x4 patches, hidden 8, 2 heads,
/// mlp 12, 4 blocks with MoE in 1 and 3 (4 experts), representation 6,
/// 5 classes. Names and shapes per vmoe-reference.md section 7.
inline std::vector<std::pair<std::string, std::vector<int64_t>>> tinyParams() {
  int64_t d = 8, h = 2, dh = 4, m = 12, e = 4;
  std::vector<std::pair<std::string, std::vector<int64_t>>> w = {
      {"embedding/kernel", {4, 4, 3, d}},
      {"embedding/bias", {d}},
      {"cls", {1, 1, d}},
      {"Encoder/posembed_input/pos_embedding", {1, 5, d}}};
  for (int i = 0; i < 4; ++i) {
    std::string b = "Encoder/encoderblock_" + std::to_string(i) + "/";
    w.push_back({b + "LayerNorm_0/scale", {d}});
    w.push_back({b + "LayerNorm_0/bias", {d}});
    for (const char *part : {"query", "key", "value"}) {
      w.push_back({b + "SelfAttention/" + part + "/kernel", {d, h, dh}});
      w.push_back({b + "SelfAttention/" + part + "/bias", {h, dh}});
    }
    w.push_back({b + "SelfAttention/out/kernel", {h, dh, d}});
    w.push_back({b + "SelfAttention/out/bias", {d}});
    w.push_back({b + "LayerNorm_1/scale", {d}});
    w.push_back({b + "LayerNorm_1/bias", {d}});
    if (i % 2 == 1) {
      w.push_back({b + "Moe/Router/dense/kernel", {d, e}});
      w.push_back({b + "Moe/Mlp/Dense_0/kernel", {e, d, m}});
      w.push_back({b + "Moe/Mlp/Dense_0/bias", {e, m}});
      w.push_back({b + "Moe/Mlp/Dense_1/kernel", {e, m, d}});
      w.push_back({b + "Moe/Mlp/Dense_1/bias", {e, d}});
    } else {
      w.push_back({b + "Mlp/Dense_0/kernel", {d, m}});
      w.push_back({b + "Mlp/Dense_0/bias", {m}});
      w.push_back({b + "Mlp/Dense_1/kernel", {m, d}});
      w.push_back({b + "Mlp/Dense_1/bias", {d}});
    }
  }
  w.push_back({"Encoder/encoder_norm/scale", {d}});
  w.push_back({"Encoder/encoder_norm/bias", {d}});
  w.push_back({"pre_logits/kernel", {d, 6}});
  w.push_back({"pre_logits/bias", {6}});
  w.push_back({"head/kernel", {6, 5}});
  w.push_back({"head/bias", {5}});
  return w;
}

/// Checks `weights` holds exactly the tiny model with pattern values.
inline void expectTinyWeights(const TensorMap &weights, DType type) {
  auto expected = tinyParams();
  EXPECT_EQ(weights.size(), expected.size());
  for (auto &[name, shape] : expected) {
    auto it = weights.find(name);
    ASSERT_NE(it, weights.end()) << "missing " << name;
    EXPECT_EQ(it->second.shape, shape) << name;
    EXPECT_EQ(it->second.sourceType, type) << name;
    uint64_t n = 1;
    for (int64_t dim : shape)
      n *= uint64_t(dim);
    ASSERT_EQ(it->second.data.size(), n) << name;
    for (uint64_t j = 0; j < n; ++j)
      ASSERT_EQ(it->second.data[j], patternValue(name, j))
          << name << " element " << j;
  }
}

// ---- msgpack, as msgpack-python's packb(use_bin_type=True)
// ----------------------

struct Mp {
  Bytes b;
  Mp &byte(uint8_t x) {
    b.push_back(x);
    return *this;
  }
  Mp &be(uint64_t v, int width) {
    for (int k = width - 1; k >= 0; --k)
      b.push_back(uint8_t(v >> (8 * k)));
    return *this;
  }
  Mp &raw(const Bytes &x) {
    b.insert(b.end(), x.begin(), x.end());
    return *this;
  }
  Mp &nil() { return byte(0xc0); }
  Mp &boolean(bool v) { return byte(v ? 0xc3 : 0xc2); }
  Mp &i(int64_t v) {
    if (v >= 0 && v <= 0x7f)
      return byte(uint8_t(v));
    if (v < 0 && v >= -32)
      return byte(uint8_t(v));
    if (v >= 0 && v <= 0xff)
      return byte(0xcc).be(uint64_t(v), 1);
    if (v >= 0 && v <= 0xffff)
      return byte(0xcd).be(uint64_t(v), 2);
    if (v >= 0 && v <= 0xffffffffLL)
      return byte(0xce).be(uint64_t(v), 4);
    if (v >= 0)
      return byte(0xcf).be(uint64_t(v), 8);
    return byte(0xd3).be(uint64_t(v), 8);
  }
  Mp &str(std::string_view s) {
    if (s.size() < 32)
      byte(uint8_t(0xa0 | s.size()));
    else if (s.size() < 256)
      byte(0xd9).be(s.size(), 1);
    else
      byte(0xda).be(s.size(), 2);
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Mp &bin(const Bytes &x) {
    if (x.size() < 256)
      byte(0xc4).be(x.size(), 1);
    else if (x.size() < 65536)
      byte(0xc5).be(x.size(), 2);
    else
      byte(0xc6).be(x.size(), 4);
    return raw(x);
  }
  Mp &arr(size_t n) {
    if (n < 16)
      return byte(uint8_t(0x90 | n));
    return byte(0xdc).be(n, 2);
  }
  Mp &map(size_t n) {
    if (n < 16)
      return byte(uint8_t(0x80 | n));
    return byte(0xde).be(n, 2);
  }
  Mp &ext(int8_t code, const Bytes &payload) {
    size_t n = payload.size();
    if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16) {
      uint8_t tag = n == 1   ? 0xd4
                    : n == 2 ? 0xd5
                    : n == 4 ? 0xd6
                    : n == 8 ? 0xd7
                             : 0xd8;
      byte(tag);
    } else if (n < 256) {
      byte(0xc7).be(n, 1);
    } else {
      byte(0xc8).be(n, 2);
    }
    byte(uint8_t(code));
    return raw(payload);
  }
};

/// Slice payload [start, stop, nil].
inline Bytes slicePayload(int64_t start, int64_t stop) {
  return Mp().arr(3).i(start).i(stop).nil().b;
}
/// SliceNd payload: array of bin Slice payloads.
inline Bytes
sliceNdPayload(const std::vector<std::pair<int64_t, int64_t>> &slices) {
  Mp m;
  m.arr(slices.size());
  for (auto [a, z] : slices)
    m.bin(slicePayload(a, z));
  return m.b;
}
/// IndexInfo payload (ext 8).
inline Bytes indexInfoPayload(
    const std::vector<int64_t> &shape, const std::string &dtype,
    const std::vector<std::vector<std::pair<int64_t, int64_t>>> &slices,
    const std::vector<int64_t> &shards) {
  Mp sa;
  sa.arr(4).arr(shape.size());
  for (int64_t d : shape)
    sa.i(d);
  sa.str(dtype).boolean(false).map(0);
  Mp m;
  m.arr(3).bin(sa.b).arr(slices.size());
  for (auto &s : slices)
    m.bin(sliceNdPayload(s));
  m.arr(shards.size());
  for (int64_t s : shards)
    m.i(s);
  return m.b;
}
/// flax ndarray payload (ext 1) of float32 values.
inline Bytes ndarrayPayload(const std::vector<float> &values,
                            const std::string &dtype = "float32") {
  Bytes data(values.size() * 4);
  std::memcpy(data.data(), values.data(), data.size());
  return Mp().arr(3).arr(1).i(int64_t(values.size())).str(dtype).bin(data).b;
}

/// Reads a checkpoint from memory: shards[i] is data shard i.
inline bool readCheckpoint(const Bytes &index, const std::vector<Bytes> &shards,
                           TensorMap &out, std::string &error,
                           const ReadOptions &options = {}) {
  VmoeShardSource source = [&](uint64_t shard, uint64_t count, ByteSpan &bytes,
                               std::string &name, std::string *why) {
    name = vmoeShardPath("mem", shard, count);
    if (shard >= shards.size()) {
      *why = "cannot open '" + name + "': No such file or directory";
      return false;
    }
    bytes = span(shards[shard]);
    return true;
  };
  return readVmoeCheckpoint(span(index), "mem.index", source, out, &error,
                            options);
}

// ---- ZIP / .npy / safetensors builders
// --------------------------------------------

inline uint32_t crc32Of(const Bytes &data) {
  uint32_t crc = 0xffffffffu;
  for (uint8_t x : data) {
    crc ^= x;
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline void putLE(Bytes &b, uint64_t v, int width) {
  for (int k = 0; k < width; ++k)
    b.push_back(uint8_t(v >> (8 * k)));
}

/// One central directory record (APPNOTE 4.3.12).
struct ZipRecord {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t compressedSize = 0, size = 0, localOffset = 0;
};

/// `local` (local headers and data) followed by a central directory of
/// `records` and the end record.
inline Bytes finishZip(Bytes local, const std::vector<ZipRecord> &records) {
  Bytes directory;
  for (const ZipRecord &r : records) {
    putLE(directory, 0x02014b50, 4);
    putLE(directory, 20, 2);
    putLE(directory, 20, 2);
    putLE(directory, r.flags, 2);
    putLE(directory, r.method, 2);
    putLE(directory, 0, 4);
    putLE(directory, r.crc, 4);
    putLE(directory, r.compressedSize, 4);
    putLE(directory, r.size, 4);
    putLE(directory, r.name.size(), 2);
    putLE(directory, 0, 2);
    putLE(directory, 0, 2);
    putLE(directory, 0, 2);
    putLE(directory, 0, 2);
    putLE(directory, 0, 4);
    putLE(directory, r.localOffset, 4);
    directory.insert(directory.end(), r.name.begin(), r.name.end());
  }
  uint64_t cdOffset = local.size();
  local.insert(local.end(), directory.begin(), directory.end());
  putLE(local, 0x06054b50, 4);
  putLE(local, 0, 4);
  putLE(local, records.size(), 2);
  putLE(local, records.size(), 2);
  putLE(local, directory.size(), 4);
  putLE(local, cdOffset, 4);
  putLE(local, 0, 2);
  return local;
}

/// Appends a local header and stored data; returns its record.
inline ZipRecord addStored(Bytes &local, const std::string &name,
                           const Bytes &data) {
  ZipRecord r;
  r.name = name;
  r.crc = crc32Of(data);
  r.compressedSize = r.size = data.size();
  r.localOffset = local.size();
  putLE(local, 0x04034b50, 4);
  putLE(local, 20, 2);
  putLE(local, 0, 2); // flags
  putLE(local, 0, 2); // stored
  putLE(local, 0, 4); // time, date
  putLE(local, r.crc, 4);
  putLE(local, data.size(), 4);
  putLE(local, data.size(), 4);
  putLE(local, name.size(), 2);
  putLE(local, 0, 2);
  local.insert(local.end(), name.begin(), name.end());
  local.insert(local.end(), data.begin(), data.end());
  return r;
}

/// A ZIP archive of stored entries (APPNOTE 4.3.7, 4.3.12, 4.3.16).
inline Bytes
makeZip(const std::vector<std::pair<std::string, Bytes>> &entries) {
  Bytes local;
  std::vector<ZipRecord> records;
  for (auto &[name, data] : entries)
    records.push_back(addStored(local, name, data));
  return finishZip(std::move(local), records);
}

/// A version 1.0 .npy file with the given header dict text and data.
inline Bytes makeNpy(const std::string &dict, const Bytes &data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  putLE(out, header.size(), 2);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline Bytes floatBytes(const std::vector<float> &values) {
  Bytes out(values.size() * 4);
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

/// A safetensors file with the given JSON header and data buffer.
inline Bytes makeSafetensors(const std::string &header, const Bytes &data) {
  Bytes out;
  putLE(out, header.size(), 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

} // namespace vmoe::readers::test

#endif // VMOE_TESTS_UNIT_READERS_TESTUTIL_H
