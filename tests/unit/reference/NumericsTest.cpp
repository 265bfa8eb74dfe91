//===- NumericsTest.cpp - bf16, GELU, softmax, rounding -------------------===//

#include "TestUtil.h"

#include <limits>

using namespace vmoe::reference;
using namespace vmoe::reference::test;

namespace {

uint16_t bf16Of(uint32_t floatBits) {
  return floatToBf16Bits(bitsToFloat(floatBits));
}

TEST(Bf16Test, ExactValuesAreKept) {
  EXPECT_EQ(bf16Of(0x3F800000u), 0x3F80u); // 1.0
  EXPECT_EQ(bf16Of(0xC0490000u), 0xC049u); // -3.140625
  EXPECT_EQ(bf16Of(0x00000000u), 0x0000u); // +0
  EXPECT_EQ(bf16Of(0x80000000u), 0x8000u); // -0 keeps its sign
  EXPECT_EQ(bf16Of(0x7F800000u), 0x7F80u); // +inf
  EXPECT_EQ(bf16Of(0xFF800000u), 0xFF80u); // -inf
  EXPECT_EQ(roundToBf16(1.0f), 1.0f);
}

TEST(Bf16Test, RoundsToNearest) {
  EXPECT_EQ(bf16Of(0x3F808001u), 0x3F81u); // just above half: up
  EXPECT_EQ(bf16Of(0x3F807FFFu), 0x3F80u); // just below half: down
  EXPECT_EQ(bf16Of(0xBF808001u), 0xBF81u); // same on the negative side
}

TEST(Bf16Test, TiesGoToEven) {
  // 1 + 2^-8 lies exactly between 0x3F80 (even) and 0x3F81 (odd).
  EXPECT_EQ(bf16Of(0x3F808000u), 0x3F80u);
  EXPECT_EQ(roundToBf16(1.00390625f), 1.0f);
  // Between 0x3F81 (odd) and 0x3F82 (even): up.
  EXPECT_EQ(bf16Of(0x3F818000u), 0x3F82u);
  EXPECT_EQ(bf16Of(0xBF808000u), 0xBF80u);
  // A tie whose rounding carries into the exponent: 0x3FFF8000 -> 0x4000.
  EXPECT_EQ(bf16Of(0x3FFF8000u), 0x4000u);
  // Subnormals are rounded too, not flushed: halfway cases to even.
  EXPECT_EQ(bf16Of(0x00008000u), 0x0000u);
  EXPECT_EQ(bf16Of(0x00018000u), 0x0002u);
  EXPECT_EQ(bf16Of(0x00018001u), 0x0002u);
}

TEST(Bf16Test, OverflowGoesToInfinity) {
  // FLT_MAX is above the largest bf16 plus half an ulp.
  EXPECT_EQ(bf16Of(0x7F7FFFFFu), 0x7F80u);
  EXPECT_EQ(bf16Of(0xFF7FFFFFu), 0xFF80u);
  // Largest bf16 itself and values that round down to it stay finite.
  EXPECT_EQ(bf16Of(0x7F7F0000u), 0x7F7Fu);
  EXPECT_EQ(bf16Of(0x7F7F7FFFu), 0x7F7Fu);
}

TEST(Bf16Test, NaNIsPreserved) {
  // A NaN whose payload is only in the low bits would truncate (and round)
  // to infinity without the NaN rule.
  float lowPayloadNaN = bitsToFloat(0x7F800001u);
  ASSERT_TRUE(std::isnan(lowPayloadNaN));
  EXPECT_TRUE(std::isnan(roundToBf16(lowPayloadNaN)));
  EXPECT_EQ(floatToBf16Bits(lowPayloadNaN), 0x7FC0u);
  // A NaN whose low half would carry in rounding.
  EXPECT_TRUE(std::isnan(roundToBf16(bitsToFloat(0x7FFFFFFFu))));
  // Quiet NaN and the sign bit are kept.
  EXPECT_EQ(floatToBf16Bits(std::numeric_limits<float>::quiet_NaN()), 0x7FC0u);
  EXPECT_EQ(bf16Of(0xFFC00000u), 0xFFC0u);
  EXPECT_TRUE(std::signbit(roundToBf16(bitsToFloat(0xFFC00001u))));
}

TEST(Bf16Test, TensorRoundsEveryElement) {
  Tensor x({3}, {1.00390625f, 1.01171875f, -2.0f});
  Tensor y = roundToBf16(x);
  EXPECT_EQ(y.data, (std::vector<float>{1.0f, 1.015625f, -2.0f}));
}

TEST(GeluTest, TanhFormValues) {
  // Reference values of 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  // evaluated in double (Python math); float result within 1 ulp-ish.
  EXPECT_EQ(gelu(0.0f), 0.0f);
  EXPECT_NEAR(gelu(1.0f), 0.8411919906082768, 1e-7);
  EXPECT_NEAR(gelu(-1.0f), -0.15880800939172324, 1e-7);
  EXPECT_NEAR(gelu(0.5f), 0.34571400982514394, 1e-7);
  EXPECT_NEAR(gelu(3.0f), 2.996362607918227, 3e-7);
  EXPECT_NEAR(gelu(-3.0f), -0.0036373920817729943, 1e-9);
}

TEST(GeluTest, IsNotTheErfForm) {
  // Exact (erf) GELU(1) = 0.8413447...; the tanh form differs by 1.5e-4.
  EXPECT_GT(std::fabs(gelu(1.0f) - 0.8413447460685429), 1e-4);
}

TEST(GeluTest, TensorMatchesScalar) {
  Tensor x({4}, {-2.0f, -0.25f, 0.75f, 4.0f});
  Tensor y = gelu(x);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_EQ(y.data[i], gelu(x.data[i]));
}

TEST(SoftmaxTest, KnownValues) {
  Tensor y = softmaxLastAxis(Tensor({2, 3}, {1, 2, 3, 1001, 1002, 1003}));
  // Row 1 is row 0 shifted by 1000: max-subtraction makes it identical.
  std::vector<double> expected{0.09003057317038046, 0.24472847105479767,
                               0.6652409557748219};
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t i = 0; i < 3; ++i)
      EXPECT_NEAR(y.at(r, i), expected[i], 1e-7);
}

TEST(SoftmaxTest, UniformRow) {
  Tensor y = softmaxLastAxis(Tensor({4}, {0.5f, 0.5f, 0.5f, 0.5f}));
  for (float v : y.data)
    EXPECT_EQ(v, 0.25f);
}

TEST(RoundHalfToEvenTest, MatchesPythonRound) {
  EXPECT_EQ(roundHalfToEven(0.5), 0.0);
  EXPECT_EQ(roundHalfToEven(1.5), 2.0);
  EXPECT_EQ(roundHalfToEven(2.5), 2.0);
  EXPECT_EQ(roundHalfToEven(3.5), 4.0);
  EXPECT_EQ(roundHalfToEven(-0.5), 0.0);
  EXPECT_EQ(roundHalfToEven(-1.5), -2.0);
  EXPECT_EQ(roundHalfToEven(-2.5), -2.0);
  EXPECT_EQ(roundHalfToEven(2.4999999999999996), 2.0);
  EXPECT_EQ(roundHalfToEven(2.5000000000000004), 3.0);
  EXPECT_EQ(roundHalfToEven(7.0), 7.0);
}

TEST(ValueRangeTest, Endpoints) {
  EXPECT_EQ(valueRangeMinusOneOne(0), -1.0f);
  EXPECT_EQ(valueRangeMinusOneOne(255), 1.0f);
  // Same float32 operations as vmoe: (x / 255) first, then -1 + 2 * that.
  float unit = 128.0f / 255.0f;
  EXPECT_EQ(valueRangeMinusOneOne(128), -1.0f + 2.0f * unit);
}

TEST(TensorTest, IndexingIsRowMajor) {
  Tensor t({2, 3, 4});
  EXPECT_EQ(t.offset(1, 2, 3), 23);
  EXPECT_EQ(t.offset(1, 0, 0), 12);
  t.at(1, 2, 3) = 5.0f;
  EXPECT_EQ(t.data[23], 5.0f);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.reshaped({6, 4}).at(5, 3), 5.0f);
  IntTensor filled = IntTensor::filled({2, 2}, -1);
  EXPECT_EQ(filled.data, (std::vector<int32_t>{-1, -1, -1, -1}));
}

TEST(TensorDeathTest, OutOfRangeIndexAborts) {
  Tensor t({2, 3});
  EXPECT_DEATH((void)t.at(2, 0), "out of range");
  EXPECT_DEATH((void)t.at(0), "rank");
  EXPECT_DEATH(Tensor({2}, {5.0f}), "given 1 elements");
}

TEST(ResultTest, ValueAndError) {
  Result<int64_t> good = int64_t(4);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 4);
  Result<int64_t> bad = Error{"boom"};
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error(), "boom");
  Result<Tensor> forwarded = bad.takeError();
  EXPECT_EQ(forwarded.error(), "boom");
}

} // namespace
