//===- ExpectedShapesTest.cpp - names and shapes before any data ----------===//
//
// With ReadOptions::expected, every reader checks a tensor's name and
// declared shape as soon as its header is read: a file with an unexpected
// or misshapen tensor is refused before that tensor's data is inflated,
// converted or allocated (issue #17: a 4.5 MB .npz with a 3 GiB entry of
// zeros took 6.4 GB before "unexpected weight").
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "vmoe/readers/Npz.h"
#include "vmoe/readers/Safetensors.h"
#include "vmoe/readers/Weights.h"

#include <sys/resource.h>
#include <zlib.h>

namespace vmoe::readers::test {
namespace {

/// Peak resident memory of this process so far, in bytes.
uint64_t peakRss() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return uint64_t(usage.ru_maxrss) * 1024;
}

/// A raw deflate stream of a .npy header for `shape` of float32 followed by
/// its zero data, made in 1 MiB steps (never held whole), and its CRC-32 and
/// uncompressed size.
Bytes deflatedZeroNpy(const std::string &shape, uint64_t dataBytes,
                      uint32_t &crc, uint64_t &size) {
  Bytes header = makeNpy(
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }", {});
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 1, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out, zeros(1 << 20, 0), buffer(1 << 16);
  crc = uint32_t(crc32(0L, Z_NULL, 0));
  auto feed = [&](const uint8_t *data, size_t n, int flush) {
    zs.next_in = const_cast<Bytef *>(data);
    zs.avail_in = uInt(n);
    do {
      zs.next_out = buffer.data();
      zs.avail_out = uInt(buffer.size());
      deflate(&zs, flush);
      out.insert(out.end(), buffer.data(),
                 buffer.data() + (buffer.size() - zs.avail_out));
    } while (zs.avail_out == 0);
    crc = uint32_t(crc32(crc, data, uInt(n)));
  };
  feed(header.data(), header.size(), Z_NO_FLUSH);
  for (uint64_t done = 0; done < dataBytes;) {
    uint64_t n = std::min<uint64_t>(zeros.size(), dataBytes - done);
    done += n;
    feed(zeros.data(), size_t(n), done == dataBytes ? Z_FINISH : Z_NO_FLUSH);
  }
  deflateEnd(&zs);
  size = header.size() + dataBytes;
  return out;
}

/// An archive of one deflated entry (and, first, a stored one).
Bytes zipWithDeflated(const std::string &name, const Bytes &deflated,
                      uint32_t crc, uint64_t size) {
  Bytes local;
  std::vector<ZipRecord> records;
  records.push_back(addStored(
      local, "head/bias.npy",
      makeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
              floatBytes({1, 2}))));
  ZipRecord r;
  r.name = name;
  r.method = 8;
  r.crc = crc;
  r.compressedSize = deflated.size();
  r.size = size;
  r.localOffset = local.size();
  putLE(local, 0x04034b50, 4);
  putLE(local, 20, 2);
  putLE(local, 0, 2);
  putLE(local, 8, 2);
  putLE(local, 0, 4);
  putLE(local, crc, 4);
  putLE(local, deflated.size(), 4);
  putLE(local, size, 4);
  putLE(local, name.size(), 2);
  putLE(local, 0, 2);
  local.insert(local.end(), name.begin(), name.end());
  local.insert(local.end(), deflated.begin(), deflated.end());
  records.push_back(r);
  return finishZip(std::move(local), records);
}

// 256 MiB of float32 zeros declared (1 MB deflated): reading it would
// inflate 256 MiB and convert it into 256 MiB more.
constexpr uint64_t kBombBytes = uint64_t(1) << 28;
const char *kBombShape = "(67108864,)";

TEST(ExpectedShapes, UnexpectedNpzEntryIsRefusedBeforeInflating) {
  uint32_t crc;
  uint64_t size;
  Bytes deflated = deflatedZeroNpy(kBombShape, kBombBytes, crc, size);
  Bytes zip = zipWithDeflated("params/extra/zeros.npy", deflated, crc, size);
  ExpectedShapes expected = {{"head/bias", {2}}};
  ReadOptions options;
  options.expected = &expected;
  uint64_t before = peakRss();
  TensorMap out;
  std::string error;
  EXPECT_FAILS_WITH(readNpz(span(zip), "big.npz", out, &error, options), error,
                    "big.npz: unexpected weight extra/zeros of shape "
                    "(67108864,) (not used by this config)");
  EXPECT_LT(peakRss() - before, uint64_t(64) << 20)
      << "the entry was inflated or converted";
}

TEST(ExpectedShapes, MisshapenNpzEntryIsRefusedBeforeInflating) {
  uint32_t crc;
  uint64_t size;
  Bytes deflated = deflatedZeroNpy(kBombShape, kBombBytes, crc, size);
  Bytes zip = zipWithDeflated("pre_logits/bias.npy", deflated, crc, size);
  ExpectedShapes expected = {{"head/bias", {2}}, {"pre_logits/bias", {6}}};
  ReadOptions options;
  options.expected = &expected;
  uint64_t before = peakRss();
  TensorMap out;
  std::string error;
  EXPECT_FAILS_WITH(readNpz(span(zip), "big.npz", out, &error, options), error,
                    "big.npz: weight pre_logits/bias has shape (67108864,), "
                    "the config needs (6,)");
  EXPECT_LT(peakRss() - before, uint64_t(64) << 20);
}

TEST(ExpectedShapes, NpzSizeDisagreeingWithItsHeaderIsRefusedBeforeInflating) {
  // The header says 6 floats; the directory says 256 MiB more.
  uint32_t crc;
  uint64_t size;
  Bytes deflated = deflatedZeroNpy("(6,)", kBombBytes, crc, size);
  Bytes zip = zipWithDeflated("pre_logits/bias.npy", deflated, crc, size);
  ExpectedShapes expected = {{"head/bias", {2}}, {"pre_logits/bias", {6}}};
  ReadOptions options;
  options.expected = &expected;
  uint64_t before = peakRss();
  TensorMap out;
  std::string error;
  EXPECT_FAILS_WITH(readNpz(span(zip), "big.npz", out, &error, options), error,
                    "holds 268435456 bytes of data, its shape (6,) of "
                    "float32 needs 24");
  EXPECT_LT(peakRss() - before, uint64_t(64) << 20);
}

TEST(ExpectedShapes, ExpectedNpzEntriesAreRead) {
  uint32_t crc;
  uint64_t size;
  Bytes deflated = deflatedZeroNpy("(6,)", 24, crc, size);
  Bytes zip =
      zipWithDeflated("params/pre_logits/bias.npy", deflated, crc, size);
  ExpectedShapes expected = {{"head/bias", {2}}, {"pre_logits/bias", {6}}};
  ReadOptions options;
  options.expected = &expected;
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readNpz(span(zip), "ok.npz", out, &error, options)) << error;
  EXPECT_EQ(out.at("pre_logits/bias").data, std::vector<float>(6, 0.0f));
  EXPECT_EQ(out.at("head/bias").data, (std::vector<float>{1, 2}));
}

TEST(ExpectedShapes, SafetensorsHeaderIsCheckedFirst) {
  // The header declares 1 GiB the file does not even hold: the name (or the
  // shape) is what the reader names, before offsets or data.
  Bytes file = makeSafetensors(
      "{\"zeros\": {\"dtype\": \"F32\", \"shape\": [268435456], "
      "\"data_offsets\": [0, 1073741824]}}",
      {});
  ExpectedShapes expected = {{"head/bias", {2}}};
  ReadOptions options;
  options.expected = &expected;
  TensorMap out;
  std::string error;
  EXPECT_FAILS_WITH(
      readSafetensors(span(file), "x.safetensors", out, &error, options), error,
      "x.safetensors: unexpected weight zeros of shape (268435456,)");
  file = makeSafetensors("{\"head/bias\": {\"dtype\": \"F32\", \"shape\": [3], "
                         "\"data_offsets\": [0, 12]}}",
                         floatBytes({1, 2, 3}));
  EXPECT_FAILS_WITH(
      readSafetensors(span(file), "x.safetensors", out, &error, options), error,
      "weight head/bias has shape (3,), the config needs (2,)");
}

TEST(ExpectedShapes, CheckpointIndexIsCheckedBeforeAnyShard) {
  REQUIRE_TEST_DATA();
  ExpectedShapes expected;
  for (auto &[name, shape] : tinyParams())
    expected.emplace(name, shape);
  ReadOptions options;
  options.expected = &expected;
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readWeights(dataPath("tiny_ckpt"), out, &error, options))
      << error;
  out.clear();
  expected["head/kernel"] = {5, 6};
  // The index alone decides: the data shards are never opened.
  EXPECT_FAILS_WITH(readWeights(dataPath("tiny_ckpt"), out, &error, options),
                    error,
                    "weight head/kernel has shape (6, 5), the config "
                    "needs (5, 6)");
  expected["head/kernel"] = {6, 5};
  expected.erase("head/bias");
  EXPECT_FAILS_WITH(readWeights(dataPath("tiny_ckpt"), out, &error, options),
                    error, "unexpected weight head/bias of shape (5,)");
}

} // namespace
} // namespace vmoe::readers::test
