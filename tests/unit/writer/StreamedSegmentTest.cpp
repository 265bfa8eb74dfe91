//===- StreamedSegmentTest.cpp - segments made while the file is written --===//
//
// A streamed segment (ModuleWriter::addSegmentStream) gives the same file as
// the same bytes added up front, in memory and on disk, signed or not; a
// producer that fails or makes the wrong size fails the write and leaves
// no file.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "vmoe/writer/WeightPacking.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <unistd.h>

namespace vmoe {
namespace test {
namespace {

/// A deterministic stand-in for a signature scheme: the signature is a
/// digest of what the hash saw, so two files sign alike exactly when the
/// signed bytes are the same.
class TestSigner : public writer::ModuleSigner {
public:
  uint32_t scheme() const override { return VMOE_SIGNATURE_ED25519_BLAKE2B; }
  void keyId(uint8_t out[VMOE_SIGNATURE_KEY_ID_SIZE]) const override {
    for (int i = 0; i < VMOE_SIGNATURE_KEY_ID_SIZE; ++i)
      out[i] = uint8_t(i + 1);
  }
  std::unique_ptr<writer::SignatureHash> begin() const override {
    struct Hash : writer::SignatureHash {
      std::vector<uint8_t> seen;
      void update(const void *data, size_t size) override {
        auto *p = static_cast<const uint8_t *>(data);
        seen.insert(seen.end(), p, p + size);
      }
      bool sign(uint8_t signature[VMOE_SIGNATURE_SIZE]) override {
        writer::Digest128 d = writer::digestBytes(seen.data(), seen.size());
        memset(signature, 0, VMOE_SIGNATURE_SIZE);
        memcpy(signature, &d, sizeof(d));
        return true;
      }
    };
    return std::make_unique<Hash>();
  }
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i)
    bytes[i] = uint8_t(i * 13 + seed);
  return bytes;
}

/// A module with three weight segments, streamed or not.
void fill(ModuleWriter &w, bool streamed, const writer::ModuleSigner *signer) {
  w.setMetadata({"streamed", "{}", {}, "test"});
  w.setBatch(1, 1);
  w.addInput({"x", fb::DType::F32, {1, 4}, 0});
  w.addOutput({"y", fb::DType::F32, {1, 4}, 0});
  for (uint8_t s : {1, 2, 3}) {
    std::vector<uint8_t> bytes = pattern(1000 * s + 7, s);
    uint32_t segment =
        streamed ? w.addSegmentStream(
                       bytes.size(), 64,
                       [bytes](std::vector<uint8_t> &out, std::string *) {
                         out = bytes;
                         return true;
                       })
                 : w.addSegment(bytes, 64);
    w.addConstant("w" + std::to_string(s), segment);
  }
  w.setArena(256, 64);
  w.setSigner(signer);
}

std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
}

TEST(StreamedSegment, SameFileAsSegmentsInMemory) {
  TestSigner signer;
  for (const writer::ModuleSigner *s :
       {static_cast<const writer::ModuleSigner *>(nullptr),
        static_cast<const writer::ModuleSigner *>(&signer)}) {
    SCOPED_TRACE(s ? "signed" : "unsigned");
    ModuleWriter plain, streamed;
    fill(plain, false, s);
    fill(streamed, true, s);
    std::string error;
    std::vector<uint8_t> a, b;
    ASSERT_TRUE(plain.writeToBuffer(a, &error)) << error;
    ASSERT_TRUE(streamed.writeToBuffer(b, &error)) << error;
    EXPECT_EQ(a, b);
    std::string path = ::testing::TempDir() + "/streamed.vmoe";
    size_t calls = 0;
    uint64_t lastDone = 0;
    streamed.setProgress(
        [&](uint64_t done, uint64_t total, size_t segments, size_t all) {
          ++calls;
          EXPECT_LE(done, total);
          EXPECT_GE(done, lastDone);
          lastDone = done;
          EXPECT_EQ(all, 3u);
          EXPECT_EQ(segments, calls);
        });
    ASSERT_TRUE(streamed.writeFile(path, &error)) << error;
    EXPECT_EQ(calls, 3u);
    EXPECT_EQ(readFile(path), a);
    if (!s) { // the runtime's verifier accepts it, digests included
      vmoe_module_t *module = nullptr;
      vmoe_message_t msg;
      EXPECT_EQ(vmoe_module_load_file(path.c_str(), &module, &msg),
                VMOE_STATUS_OK)
          << msg.text;
      vmoe_module_release(module);
    }
    std::remove(path.c_str());
  }
}

TEST(StreamedSegment, FailingProducerLeavesNoFile) {
  for (bool wrongSize : {false, true}) {
    ModuleWriter w;
    fill(w, true, nullptr);
    w.addSegmentStream(
        10, 64, [wrongSize](std::vector<uint8_t> &out, std::string *error) {
          if (wrongSize) {
            out.assign(9, 0);
            return true;
          }
          *error = "cannot read parameter x";
          return false;
        });
    std::string path = ::testing::TempDir() + "/failing.vmoe", error;
    std::remove(path.c_str());
    EXPECT_FALSE(w.writeFile(path, &error));
    EXPECT_EQ(error, wrongSize ? "segment 3: made 9 bytes, declared 10"
                               : "cannot read parameter x");
    EXPECT_NE(access(path.c_str(), F_OK), 0);
    std::vector<uint8_t> bytes;
    EXPECT_FALSE(w.writeToBuffer(bytes, &error));
  }
}

// The packings against the definition: element (e, kk, j) of the side by
// side matrix lands at panel j / nr, row kk, column j % nr (pairs: row
// kk / 2, column 2 (j % nr) + kk % 2), zero elsewhere; biases are padded.
TEST(WeightPacking, PanelsPairsAndBiasesFollowTheirDefinition) {
  writer::PackSpec spec;
  spec.layout = writer::PackLayout::Panels;
  spec.batch = 2;
  spec.k = 4;
  spec.nr = 4;
  spec.widths = {3, 2}; // N = 5: two panels, the second padded
  std::string error;
  ASSERT_TRUE(writer::checkPackSpec(spec, &error)) << error;
  std::vector<float> a(2 * 4 * 3), b(2 * 4 * 2);
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = float(i + 1);
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = float(100 + i);
  auto value = [&](int64_t e, int64_t kk, int64_t j) {
    return j < 3 ? a[(e * 4 + kk) * 3 + j] : b[(e * 4 + kk) * 2 + (j - 3)];
  };
  for (bool pairs : {false, true}) {
    spec.kPairs = spec.bf16 = pairs;
    std::vector<uint8_t> out;
    writer::packWeights(spec, {a.data(), b.data()}, out);
    ASSERT_EQ(out.size(), writer::packedBytes(spec));
    ASSERT_EQ(out.size(), size_t(2 * 2 * 4 * 4 * (pairs ? 2 : 4)));
    for (int64_t e = 0; e < 2; ++e)
      for (int64_t p = 0; p < 2; ++p)
        for (int64_t kk = 0; kk < 4; ++kk)
          for (int64_t l = 0; l < 4; ++l) {
            int64_t j = p * 4 + l;
            int64_t in = pairs ? (kk / 2) * 8 + 2 * l + kk % 2 : kk * 4 + l;
            int64_t at = (e * 2 + p) * 16 + in;
            float want = j < 5 ? value(e, kk, j) : 0.0f;
            if (pairs) {
              uint16_t bits;
              memcpy(&bits, out.data() + 2 * at, 2);
              EXPECT_EQ(bits, writer::floatToBf16Bits(want));
            } else {
              float got;
              memcpy(&got, out.data() + 4 * at, 4);
              EXPECT_EQ(got, want);
            }
          }
  }
  writer::PackSpec bias;
  bias.layout = writer::PackLayout::Bias;
  bias.batch = 2;
  bias.nr = 4;
  bias.widths = {3, 2};
  std::vector<float> ba = {1, 2, 3, 4, 5, 6}, bb = {7, 8, 9, 10};
  std::vector<uint8_t> out;
  writer::packWeights(bias, {ba.data(), bb.data()}, out);
  std::vector<float> got(out.size() / 4);
  memcpy(got.data(), out.data(), out.size());
  EXPECT_EQ(got, std::vector<float>(
                     {1, 2, 3, 7, 8, 0, 0, 0, 4, 5, 6, 9, 10, 0, 0, 0}));
  // Round to nearest even, NaN stays NaN.
  EXPECT_EQ(writer::floatToBf16Bits(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(writer::floatToBf16Bits(1.0f + 3.0f / 256), 0x3f82);
  spec.kPairs = true;
  spec.bf16 = false;
  EXPECT_FALSE(writer::checkPackSpec(spec, &error));
  EXPECT_EQ(error, "bad weight packing: k pairs need bf16 or int8 panels");
}

} // namespace
} // namespace test
} // namespace vmoe
