//===- ReaderTest.cpp - the formats against each other --------------------===//

#include "TestUtil.h"

#include "vmoe/readers/Npz.h"
#include "vmoe/readers/Safetensors.h"
#include "vmoe/readers/VmoeCheckpoint.h"
#include "vmoe/readers/Weights.h"

#include <cmath>

namespace vmoe::readers::test {
namespace {

TEST(Readers, AllFormatsGiveTheSameWeights) {
  REQUIRE_TEST_DATA();
  std::vector<std::string> files = {"tiny.npz",
                                    "tiny_params_deflate.npz",
                                    "tiny.safetensors",
                                    "tiny_ckpt",
                                    "tiny_ckpt_sharded.index",
                                    "tiny_ckpt_subchunks",
                                    "tiny_ckpt_unversioned",
                                    "tiny_ckpt_trainstate"};
  TensorMap first;
  std::string error;
  ASSERT_TRUE(readWeights(dataPath(files[0]), first, &error)) << error;
  expectTinyWeights(first, DType::F32);
  for (const std::string &file : files) {
    TensorMap other;
    ASSERT_TRUE(readWeights(dataPath(file), other, &error)) << error;
    ASSERT_EQ(other.size(), first.size()) << file;
    for (auto &[name, tensor] : first) {
      auto it = other.find(name);
      ASSERT_NE(it, other.end()) << file << ": " << name;
      EXPECT_EQ(it->second.shape, tensor.shape) << file << ": " << name;
      ASSERT_EQ(it->second.data.size(), tensor.data.size());
      EXPECT_EQ(std::memcmp(it->second.data.data(), tensor.data.data(),
                            tensor.data.size() * sizeof(float)),
                0)
          << file << ": " << name;
    }
  }
}

void expectBits(const std::vector<float> &got, const std::vector<float> &want,
                const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want[i], 4);
    EXPECT_EQ(a, b) << what << " element " << i << ": " << got[i] << " vs "
                    << want[i];
  }
}

TEST(Readers, DtypeConversionInEveryFormat) {
  REQUIRE_TEST_DATA();
  // make_checkpoints.py dtype_tensors().
  std::vector<float> bf16 = {1.0f,
                             -2.5f,
                             0.15625f,
                             std::ldexp(1.0f, 100),
                             -std::ldexp(1.0f, -130),
                             0.0f,
                             -0.0f,
                             3.0f,
                             65280.0f,
                             -1.0f,
                             0.5f,
                             std::ldexp(1.0f, -126)};
  std::vector<float> f16 = {0.0f,     -0.0f,    std::ldexp(1.0f, -24),
                            65504.0f, INFINITY, -1.5f};
  std::vector<float> f64 = {0.1f, 0.0f, INFINITY, -3.25f,
                            std::ldexp(1.0f, -149)};
  for (const char *file : {"dtypes.npz", "dtypes.safetensors", "dtypes_ckpt"}) {
    TensorMap out;
    std::string error;
    ASSERT_TRUE(readWeights(dataPath(file), out, &error)) << error;
    ASSERT_EQ(out.size(), 4u) << file;
    EXPECT_EQ(out["bf16"].shape, (std::vector<int64_t>{3, 4})) << file;
    EXPECT_EQ(out["bf16"].sourceType, DType::BF16) << file;
    expectBits(out["bf16"].data, bf16, std::string(file) + " bf16");
    EXPECT_EQ(out["f16"].shape, (std::vector<int64_t>{2, 3})) << file;
    EXPECT_EQ(out["f16"].sourceType, DType::F16) << file;
    expectBits(out["f16"].data, f16, std::string(file) + " f16");
    EXPECT_EQ(out["f64"].sourceType, DType::F64) << file;
    expectBits(out["f64"].data, f64, std::string(file) + " f64");
    EXPECT_TRUE(out["scalar"].shape.empty()) << file;
    expectBits(out["scalar"].data, {-7.75f}, std::string(file) + " scalar");
  }
}

TEST(Readers, DetectsTheFormat) {
  REQUIRE_TEST_DATA();
  std::string prefix;
  EXPECT_EQ(detectWeightsFormat(dataPath("tiny_ckpt"), prefix),
            WeightsFormat::VmoeCheckpoint);
  EXPECT_EQ(prefix, dataPath("tiny_ckpt"));
  EXPECT_EQ(detectWeightsFormat(dataPath("tiny_ckpt.index"), prefix),
            WeightsFormat::VmoeCheckpoint);
  EXPECT_EQ(prefix, dataPath("tiny_ckpt"));
  EXPECT_EQ(detectWeightsFormat(
                dataPath("tiny_ckpt_sharded.data-00001-of-00003"), prefix),
            WeightsFormat::VmoeCheckpoint);
  EXPECT_EQ(prefix, dataPath("tiny_ckpt_sharded"));
  EXPECT_EQ(detectWeightsFormat(dataPath("tiny.npz"), prefix),
            WeightsFormat::Npz);
  EXPECT_EQ(detectWeightsFormat(dataPath("tiny.safetensors"), prefix),
            WeightsFormat::Safetensors);
  // By content, without a suffix.
  writeFile(dataPath("npz_without_suffix"), readFile(dataPath("tiny.npz")));
  writeFile(dataPath("st_without_suffix"),
            readFile(dataPath("tiny.safetensors")));
  EXPECT_EQ(detectWeightsFormat(dataPath("npz_without_suffix"), prefix),
            WeightsFormat::Npz);
  EXPECT_EQ(detectWeightsFormat(dataPath("st_without_suffix"), prefix),
            WeightsFormat::Safetensors);
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readWeights(dataPath("st_without_suffix"), out, &error)) << error;
  EXPECT_EQ(out.size(), tinyParams().size());
  out.clear();
  ASSERT_TRUE(readWeights(dataPath("tiny_ckpt_sharded.data-00002-of-00003"),
                          out, &error))
      << error;
  EXPECT_EQ(out.size(), tinyParams().size());
  // Neither.
  writeFile(dataPath("not_weights.txt"), toBytes("hello, world\n"));
  EXPECT_FAILS_WITH(readWeights(dataPath("not_weights.txt"), out, &error),
                    error, "unknown weights format");
  EXPECT_FAILS_WITH(readWeights(dataPath("nothing_here"), out, &error), error,
                    "no such file, and no '" + dataPath("nothing_here.index"));
}

TEST(Readers, MergingTwoFilesRefusesDuplicates) {
  REQUIRE_TEST_DATA();
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readNpz(dataPath("tiny.npz"), out, &error)) << error;
  EXPECT_FAILS_WITH(readSafetensors(dataPath("tiny.safetensors"), out, &error),
                    error, "is given twice");
}

} // namespace
} // namespace vmoe::readers::test
