//===- Int8Test.cpp - int8 quantization, int8 GEMMs and their layers ------===//

#include "TestUtil.h"

#include <algorithm>

using namespace vmoe::reference;
using namespace vmoe::reference::test;

namespace {

std::vector<int8_t> valuesOf(const Int8Quantized &q) { return q.values.data; }

//===----------------------------------------------------------------------===//
// Scalars: scale, rounding, clamping
//===----------------------------------------------------------------------===//

TEST(Int8ScaleTest, AmaxOver127AndOneForZero) {
  EXPECT_EQ(int8Scale(127.0f), 1.0f);
  EXPECT_EQ(int8Scale(63.5f), 0.5f);
  EXPECT_EQ(int8Scale(1.0f), 1.0f / 127.0f);
  EXPECT_EQ(int8Scale(0.0f), 1.0f);
}

TEST(QuantizeInt8Test, HalvesGoToEven) {
  EXPECT_EQ(quantizeInt8(0.5f, 1.0f), 0);
  EXPECT_EQ(quantizeInt8(1.5f, 1.0f), 2);
  EXPECT_EQ(quantizeInt8(2.5f, 1.0f), 2);
  EXPECT_EQ(quantizeInt8(3.5f, 1.0f), 4);
  EXPECT_EQ(quantizeInt8(126.5f, 1.0f), 126);
  EXPECT_EQ(quantizeInt8(-0.5f, 1.0f), 0);
  EXPECT_EQ(quantizeInt8(-1.5f, 1.0f), -2);
  EXPECT_EQ(quantizeInt8(-2.5f, 1.0f), -2);
  EXPECT_EQ(quantizeInt8(2.5f, 0.5f), 5);  // 5.0, no tie
  EXPECT_EQ(quantizeInt8(1.25f, 0.5f), 2); // 2.5 -> 2
  EXPECT_EQ(quantizeInt8(0.75f, 0.5f), 2); // 1.5 -> 2
  EXPECT_EQ(quantizeInt8(0.49999997f, 1.0f), 0);
  EXPECT_EQ(quantizeInt8(0.50000006f, 1.0f), 1);
}

TEST(QuantizeInt8Test, ClampsSymmetricallyTo127) {
  EXPECT_EQ(quantizeInt8(127.0f, 1.0f), 127);
  EXPECT_EQ(quantizeInt8(127.49f, 1.0f), 127);
  EXPECT_EQ(quantizeInt8(127.5f, 1.0f), 127); // rounds to 128, clamped
  EXPECT_EQ(quantizeInt8(1000.0f, 1.0f), 127);
  EXPECT_EQ(quantizeInt8(-127.5f, 1.0f), -127);
  EXPECT_EQ(quantizeInt8(-128.0f, 1.0f), -127); // never -128
  EXPECT_EQ(quantizeInt8(-1e30f, 1.0f), -127);
}

TEST(QuantizeInt8Test, DividesByTheScale) {
  // scale = 6.373247f / 127 = 0x1.9b197ap-5; v / scale is exactly 7.5 (a
  // tie, to 8), while v * (1 / scale) is 7.4999995 (to 7).
  float amax = 0x1.97e348p+2f, v = 0x1.8167e2p-2f;
  float scale = int8Scale(amax);
  ASSERT_EQ(scale, 0x1.9b197ap-5f);
  ASSERT_EQ(v / scale, 7.5f);
  ASSERT_NE(std::nearbyint(v * (1.0f / scale)), 8.0f);
  EXPECT_EQ(quantizeInt8(v, scale), 8);
  Int8Quantized row = quantizeRowsInt8(Tensor({2}, {amax, v}));
  EXPECT_EQ(valuesOf(row), (std::vector<int8_t>{127, 8}));
}

//===----------------------------------------------------------------------===//
// Rows and channels
//===----------------------------------------------------------------------===//

TEST(QuantizeRowsInt8Test, HandComputedRows) {
  Tensor x({3, 8},
           {127,    0.5f,  1.5f,  2.5f,   -2.5f,   -0.5f, -127, 0.25f, //
            0,      -0.0f, 0,     0,      0,       0,     0,    0,     //
            -63.5f, 0.25f, 0.75f, 31.75f, -31.75f, 1,     -1,   0});
  Int8Quantized q = quantizeRowsInt8(x);
  EXPECT_EQ(q.values.shape, x.shape);
  // Row 0: scale 1. Row 1: amax 0, scale 1, all zeros. Row 2: the amax is
  // negative, scale 63.5 / 127 = 0.5.
  EXPECT_EQ(q.scales.data, (std::vector<float>{1.0f, 1.0f, 0.5f}));
  EXPECT_EQ(valuesOf(q),
            (std::vector<int8_t>{127,  0, 2, 2,  -2,  0, -127, 0, //
                                 0,    0, 0, 0,  0,   0, 0,    0, //
                                 -127, 0, 2, 64, -64, 2, -2,   0}));
  // Leading axes: one scale per row.
  EXPECT_EQ(quantizeRowsInt8(x.reshaped({1, 3, 8})).scales.shape,
            (std::vector<int64_t>{1, 3}));
}

TEST(QuantizeRowsInt8Test, TheLargestMagnitudeIsAlways127) {
  // amax / (amax / 127) rounds to 127 for every amax: the clamp never has
  // to catch the row's own maximum.
  std::mt19937 rng(24);
  std::uniform_real_distribution<float> exponent(-20.0f, 20.0f);
  for (int i = 0; i < 2000; ++i) {
    float amax = std::exp2(exponent(rng));
    Int8Quantized q = quantizeRowsInt8(Tensor({3}, {amax, -amax, amax / 3}));
    EXPECT_EQ(q.values.data[0], 127) << amax;
    EXPECT_EQ(q.values.data[1], -127) << amax;
    EXPECT_EQ(q.values.data[2], 42) << amax; // 42.33
  }
}

TEST(QuantizeWeightsInt8Test, PerOutputChannel) {
  // Column 0: amax 63.5 (scale 0.5); column 1: zeros (scale 1); column 2: a
  // negative amax of -254 (scale 2).
  Tensor kernel({3, 3}, {63.5f, 0, 3,     //
                         -1, -0.0f, -254, //
                         0.25f, 0, 5});
  Int8Quantized q = quantizeWeightsInt8(kernel);
  EXPECT_EQ(q.scales.data, (std::vector<float>{0.5f, 1.0f, 2.0f}));
  EXPECT_EQ(valuesOf(q), (std::vector<int8_t>{127, 0, 2,   //
                                              -2, 0, -127, //
                                              0, 0, 2}));
}

//===----------------------------------------------------------------------===//
// int32 accumulation and the epilogue
//===----------------------------------------------------------------------===//

TEST(Int8MatMulTest, AccumulationIsExactPast2To24) {
  // acc = 1 + 1100 * 127 * 127 = 17741901: odd and above 2^24, so a float
  // accumulator could not hold it; int32 does.
  const int64_t k = 1101;
  Int8Tensor x({1, k}), w({k, 2});
  x.data[0] = 1;
  w.at(0, 0) = 1;
  w.at(0, 1) = -1;
  for (int64_t i = 1; i < k; ++i) {
    x.data[i] = 127;
    w.at(i, 0) = 127;
    w.at(i, 1) = -127;
  }
  IntTensor acc = int8MatMul(x, w);
  EXPECT_EQ(acc.data, (std::vector<int32_t>{17741901, -17741901}));
  EXPECT_NE(static_cast<double>(static_cast<float>(17741901)), 17741901.0);
}

TEST(Int8MatMulTest, RandomValuesMatchInt64SumsAndTheUnsignedForm) {
  std::mt19937 rng(25);
  std::uniform_int_distribution<int> value(-127, 127);
  const int64_t m = 3, k = 300, n = 5;
  Int8Tensor x({m, k}), w({k, n});
  for (int8_t &v : x.data)
    v = static_cast<int8_t>(value(rng));
  for (int8_t &v : w.data)
    v = static_cast<int8_t>(value(rng));
  IntTensor acc = int8MatMul(x, w);
  ASSERT_EQ(acc.shape, (std::vector<int64_t>{m, n}));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      int64_t sum = 0, unsignedSum = 0, columnSum = 0;
      for (int64_t i = 0; i < k; ++i) {
        sum += int64_t{x.at(r, i)} * w.at(i, c);
        // The u8 x s8 form of vpdpbusd kernels: (qx + 128) qw, minus
        // 128 sum_k qw.
        unsignedSum += (int64_t{x.at(r, i)} + 128) * w.at(i, c);
        columnSum += w.at(i, c);
      }
      EXPECT_EQ(acc.at(r, c), sum);
      EXPECT_EQ(unsignedSum - 128 * columnSum, sum);
    }
}

TEST(Int8EpilogueTest, ScalesInOrderWithoutFma) {
  // ((float)acc * sx) * sw + b, each step rounded: -0x1.955f6ap+4. Scaling by
  // sx * sw first, one fused multiply-add, or the exact value in double
  // all give -0x1.955f68p+4.
  const int32_t accValue = -787221;
  const float sx = 0x1.677136p-7f, sw = 0x1.882a14p-9f, b = 0x1.005f98p-1f;
  Tensor y = int8Epilogue(IntTensor({1, 1}, {accValue}), Tensor({1}, {sx}),
                          Tensor({1}, {sw}), Tensor({1}, {b}));
  EXPECT_EQ(y.data[0], -0x1.955f6ap+4f);
  float rowScaled = static_cast<float>(accValue) * sx;
  EXPECT_NE(std::fma(rowScaled, sw, b), y.data[0]);
  float combinedScale = sx * sw;
  float otherOrder = static_cast<float>(accValue) * combinedScale;
  EXPECT_NE(otherOrder + b, y.data[0]);
  EXPECT_NE(
      static_cast<float>(double{static_cast<float>(accValue)} * sx * sw + b),
      y.data[0]);
  // Without a bias there is no add (no +0.0 that would turn -0.0 into 0.0).
  Tensor noBias = int8Epilogue(IntTensor({1, 1}, {0}), Tensor({1}, {-1.0f}),
                               Tensor({1}, {1.0f}), Tensor());
  EXPECT_TRUE(std::signbit(noBias.data[0]));
}

TEST(DenseInt8Test, HandComputed) {
  // x row: amax 127, scale 1, qx = [127, -64 (tie), 0]. Kernel column 0:
  // amax 63.5, scale 0.5, qw = [127, -2, 1]; column 1: zeros, scale 1.
  // acc0 = 127*127 + (-64)(-2) = 16257: y0 = 16257 * 1 * 0.5 + 0.25.
  // acc1 = 0: y1 = the bias. A zero row gives the bias everywhere.
  Tensor x({2, 3}, {127, -63.5f, 0.25f, 0, 0, 0});
  Tensor kernel({3, 2}, {63.5f, 0, -1, 0, 0.5f, 0});
  Tensor bias({2}, {0.25f, -3});
  EXPECT_EQ(denseInt8(x, kernel, bias).data,
            (std::vector<float>{8128.75f, -3, 0.25f, -3}));
  EXPECT_EQ(dense(x, {kernel, bias}, GemmMath::Int8).data,
            denseInt8(x, kernel, bias).data);
  EXPECT_EQ(dense(x, {kernel, bias}, GemmMath::F32).data,
            dense(x, kernel, bias).data);
}

/// |y8 - y| <= sum_k (|x_k| sw/2 + |w_kn| sx/2 + sx sw/4): each value moves
/// by at most half a step when quantized. `slack` covers the f32 rounding of
/// the int8 epilogue and of y.
::testing::AssertionResult withinQuantizationBound(const Tensor &x,
                                                   const Tensor &kernel,
                                                   const Tensor &y8,
                                                   const Tensor &y) {
  Int8Quantized qx = quantizeRowsInt8(x), qw = quantizeWeightsInt8(kernel);
  int64_t in = kernel.dim(0), out = kernel.dim(1), rows = qx.scales.data.size();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < out; ++n) {
      double sx = qx.scales.data[r], sw = qw.scales.data[n], bound = 0;
      for (int64_t k = 0; k < in; ++k)
        bound += std::fabs(x.data[r * in + k]) * sw / 2 +
                 std::fabs(kernel.at(k, n)) * sx / 2 + sx * sw / 4;
      double diff =
          std::fabs(double{y8.data[r * out + n]} - y.data[r * out + n]);
      double slack = 1e-6 * (1 + std::fabs(y.data[r * out + n]));
      if (!(diff <= bound + slack))
        return ::testing::AssertionFailure()
               << "row " << r << " channel " << n << ": |"
               << y8.data[r * out + n] << " - " << y.data[r * out + n] << "| > "
               << bound;
    }
  return ::testing::AssertionSuccess();
}

/// sqrt(mean((a - b)^2)) / sqrt(mean(b^2)).
double relativeRms(const Tensor &a, const Tensor &b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < b.numElements(); ++i) {
    num += (double{a.data[i]} - b.data[i]) * (double{a.data[i]} - b.data[i]);
    den += double{b.data[i]} * b.data[i];
  }
  return std::sqrt(num / den);
}

TEST(DenseInt8Test, RandomLayersStayWithinTheQuantizationBoundOfF32) {
  // Bound per element as above; over the whole output the int8 error is
  // below 1% RMS of the f32 output (measured: about 0.5% for these shapes).
  std::mt19937 rng(26);
  for (int64_t in : {16, 64, 256}) {
    Tensor x = randomTensor({12, in}, rng, -3, 3);
    Tensor kernel = randomTensor({in, 24}, rng, -0.5f, 0.5f);
    Tensor bias = randomTensor({24}, rng);
    Tensor y8 = denseInt8(x, kernel, bias), y = dense(x, kernel, bias);
    EXPECT_TRUE(withinQuantizationBound(x, kernel, y8, y)) << "K=" << in;
    EXPECT_LT(relativeRms(y8, y), 0.01) << "K=" << in;
  }
}

//===----------------------------------------------------------------------===//
// Layers: which GEMMs are int8
//===----------------------------------------------------------------------===//

MlpWeights randomMlp(int64_t hidden, int64_t mlpDim, std::mt19937 &rng) {
  return {{randomTensor({hidden, mlpDim}, rng), randomTensor({mlpDim}, rng)},
          {randomTensor({mlpDim, hidden}, rng), randomTensor({hidden}, rng)}};
}

AttentionWeights randomAttention(int64_t hidden, int64_t heads, int64_t headDim,
                                 std::mt19937 &rng) {
  AttentionWeights w;
  w.queryKernel = randomTensor({hidden, heads, headDim}, rng);
  w.keyKernel = randomTensor({hidden, heads, headDim}, rng);
  w.valueKernel = randomTensor({hidden, heads, headDim}, rng);
  w.queryBias = randomTensor({heads, headDim}, rng);
  w.keyBias = randomTensor({heads, headDim}, rng);
  w.valueBias = randomTensor({heads, headDim}, rng);
  w.outKernel = randomTensor({heads, headDim, hidden}, rng);
  w.outBias = randomTensor({hidden}, rng);
  return w;
}

TEST(Int8LayersTest, MlpQuantizesTheGeluOutputPerRow) {
  std::mt19937 rng(27);
  MlpWeights w = randomMlp(8, 16, rng);
  Tensor x = randomTensor({2, 3, 8}, rng);
  Tensor expected =
      denseInt8(gelu(denseInt8(x, w.dense0.kernel, w.dense0.bias)),
                w.dense1.kernel, w.dense1.bias);
  EXPECT_TRUE(bitwiseEqual(mlpBlock(x, w, GemmMath::Int8), expected));
  EXPECT_TRUE(bitwiseEqual(mlpBlock(x, w, GemmMath::F32), mlpBlock(x, w)));
}

TEST(Int8LayersTest, AttentionProjectionsAreInt8PerHeadDimChannel) {
  // One token: softmax over one key is 1, so y = out(v(x)) with both
  // projections int8 on the (D, H*Dh) and (H*Dh, D) kernels.
  std::mt19937 rng(28);
  AttentionWeights w = randomAttention(8, 2, 4, rng);
  Tensor x = randomTensor({1, 1, 8}, rng);
  Tensor v =
      denseInt8(x, w.valueKernel.reshaped({8, 8}), w.valueBias.reshaped({8}));
  Tensor expected = denseInt8(v, w.outKernel.reshaped({8, 8}), w.outBias);
  EXPECT_TRUE(bitwiseEqual(selfAttention(x, w, GemmMath::Int8), expected));
  // More tokens: the int8 form stays close to f32 (1% RMS; measured about
  // 0.6%) and differs from it.
  Tensor tokens = randomTensor({2, 5, 8}, rng);
  Tensor y8 = selfAttention(tokens, w, GemmMath::Int8);
  Tensor y = selfAttention(tokens, w);
  EXPECT_LT(relativeRms(y8, y), 0.01);
  EXPECT_GT(relativeRms(y8, y), 0.0);
}

struct SmallMoe {
  MoeWeights weights;
  MoeConfig config;
};

SmallMoe makeSmallMoe(int64_t hidden, int64_t experts, int64_t mlpDim,
                      std::mt19937 &rng) {
  SmallMoe moe;
  moe.weights.routerKernel = randomTensor({hidden, experts}, rng, -2, 2);
  moe.weights.experts = {randomTensor({experts, hidden, mlpDim}, rng),
                         randomTensor({experts, mlpDim}, rng),
                         randomTensor({experts, mlpDim, hidden}, rng),
                         randomTensor({experts, hidden}, rng)};
  return moe;
}

/// Expert e's int8 MLP on one token row alone.
Tensor int8ExpertOnToken(const ExpertWeights &w, int64_t e, const Tensor &x) {
  int64_t hidden = w.kernel0.dim(1), mlpDim = w.kernel0.dim(2);
  auto slice = [](const Tensor &t, int64_t i, std::vector<int64_t> shape) {
    int64_t size = numElementsOf(shape);
    return Tensor(shape, std::vector<float>(t.data.begin() + i * size,
                                            t.data.begin() + (i + 1) * size));
  };
  Tensor h = gelu(denseInt8(x, slice(w.kernel0, e, {hidden, mlpDim}),
                            slice(w.bias0, e, {mlpDim})));
  return denseInt8(h, slice(w.kernel1, e, {mlpDim, hidden}),
                   slice(w.bias1, e, {hidden}));
}

TEST(Int8MoeTest, RoutingStaysF32AndEachTokenIsQuantizedAlone) {
  std::mt19937 rng(29);
  const int64_t tokens = 12, hidden = 8, experts = 4, mlpDim = 16, k = 2;
  SmallMoe moe = makeSmallMoe(hidden, experts, mlpDim, rng);
  moe.config.groupSize = tokens;
  moe.config.numSelectedExperts = k;
  moe.config.capacityFactor = 0.5; // 4 experts x C = 4 < 24: some drop
  moe.config.batchPriority = true;
  Tensor x = randomTensor({tokens, hidden}, rng, -2, 2);
  Result<MoeOutput> f32 = sparseMoe(x, moe.weights, moe.config);
  moe.config.int8ExpertMath = true;
  Result<MoeOutput> int8 = sparseMoe(x, moe.weights, moe.config);
  ASSERT_TRUE(f32.ok() && int8.ok());
  EXPECT_GT(int8->stats.assignmentsDropped, 0);
  // The router's input is the layer's input: gates and routing are f32's.
  EXPECT_TRUE(bitwiseEqual(int8->gates, f32->gates));
  EXPECT_EQ(int8->routing.slots.data, f32->routing.slots.data);
  EXPECT_EQ(int8->routing.experts.data, f32->routing.experts.data);
  // Each kept assignment: the token's bf16-rounded row, quantized on its
  // own (the same qx in every expert, whatever else is in the buffer).
  for (int64_t t = 0; t < tokens; ++t) {
    Tensor row({1, hidden});
    for (int64_t d = 0; d < hidden; ++d)
      row.data[d] = roundToBf16(x.at(t, d));
    std::vector<double> acc(hidden, 0.0);
    for (int64_t j = 0; j < k; ++j) {
      if (int8->routing.slots.at(0, t, j) < 0)
        continue;
      Tensor y = int8ExpertOnToken(moe.weights.experts,
                                   int8->routing.experts.at(0, t, j), row);
      for (int64_t d = 0; d < hidden; ++d)
        acc[d] +=
            double{int8->routing.weights.at(0, t, j)} * roundToBf16(y.data[d]);
    }
    for (int64_t d = 0; d < hidden; ++d)
      EXPECT_EQ(int8->output.at(t, d), static_cast<float>(acc[d]))
          << "token " << t << " dim " << d;
  }
  // Against f32: 2% RMS (measured about 0.7%).
  EXPECT_LT(relativeRms(int8->output, f32->output), 0.02);
}

TEST(Int8MoeTest, Bf16AndInt8ExpertMathAreExclusive) {
  std::mt19937 rng(30);
  SmallMoe moe = makeSmallMoe(4, 2, 8, rng);
  moe.config.groupSize = 2;
  moe.config.capacityFactor = 1.0;
  moe.config.bf16ExpertMath = true;
  moe.config.int8ExpertMath = true;
  Result<MoeOutput> out =
      sparseMoe(randomTensor({2, 4}, rng), moe.weights, moe.config);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error(), "bf16 and int8 expert math are exclusive: choose one");
}

//===----------------------------------------------------------------------===//
// The whole model: expert and dense int8 selected separately
//===----------------------------------------------------------------------===//

ModelWeights tinyModel(std::mt19937 &rng) {
  // 8x8 RGB images, p = 2: 16 patches + cls = 17 tokens; D = 8, 2 heads;
  // block 0 dense, block 1 MoE with E = 4, block 2 dense.
  const int64_t hidden = 8, mlpDim = 16, experts = 4;
  ModelWeights w;
  w.embeddingKernel = randomTensor({2, 2, 3, hidden}, rng);
  w.embeddingBias = randomTensor({hidden}, rng);
  w.cls = randomTensor({1, 1, hidden}, rng);
  w.posEmbedding = randomTensor({1, 17, hidden}, rng);
  for (int block = 0; block < 3; ++block) {
    EncoderBlockWeights b;
    b.layerNorm0 = {randomTensor({hidden}, rng), randomTensor({hidden}, rng)};
    b.attention = randomAttention(hidden, 2, 4, rng);
    b.layerNorm1 = {randomTensor({hidden}, rng), randomTensor({hidden}, rng)};
    if (block == 1)
      b.moe = makeSmallMoe(hidden, experts, mlpDim, rng).weights;
    else
      b.mlp = randomMlp(hidden, mlpDim, rng);
    w.blocks.push_back(b);
  }
  w.encoderNorm = {randomTensor({hidden}, rng), randomTensor({hidden}, rng)};
  w.head = {randomTensor({hidden, 5}, rng), randomTensor({5}, rng)};
  return w;
}

/// The forward pass written as its layers, with the GEMM math of each kind.
Tensor composedLogits(const Tensor &images, const ModelWeights &w,
                      const MoeConfig &moe, GemmMath denseMath) {
  Tensor x = addPositionEmbedding(
      prependClassToken(patchEmbed(images, w.embeddingKernel, w.embeddingBias),
                        w.cls),
      w.posEmbedding);
  for (const EncoderBlockWeights &block : w.blocks)
    x = encoderBlock(x, block, moe, denseMath)->output;
  return classifierHead(pool(layerNorm(x, w.encoderNorm), Classifier::Token),
                        std::nullopt, w.head);
}

TEST(Int8ModelTest, ExpertAndDenseInt8AreSelectedSeparately) {
  std::mt19937 rng(31);
  ModelWeights w = tinyModel(rng);
  Tensor images = randomTensor({2, 8, 8, 3}, rng);
  ModelConfig config;
  config.moe.groupSize = 34;
  config.moe.numSelectedExperts = 2;
  config.moe.capacityFactor = 2.0; // nothing dropped
  Tensor f32 = visionTransformerMoe(images, w, config)->logits;
  double logitScale = 0;
  for (float v : f32.data)
    logitScale = std::max(logitScale, double{std::fabs(v)});
  for (bool experts : {false, true})
    for (bool denseLayers : {false, true}) {
      ModelConfig c = config;
      c.moe.int8ExpertMath = experts;
      c.int8DenseMath = denseLayers;
      Result<ModelOutput> out = visionTransformerMoe(images, w, c);
      ASSERT_TRUE(out.ok()) << out.error();
      SCOPED_TRACE("experts " + std::to_string(experts) + " dense " +
                   std::to_string(denseLayers));
      EXPECT_TRUE(bitwiseEqual(
          out->logits,
          composedLogits(images, w, c.moe,
                         denseLayers ? GemmMath::Int8 : GemmMath::F32)));
      if (!experts && !denseLayers)
        continue;
      // Each switch changes the logits, by at most 5% of their scale
      // (measured: at most about 0.8%).
      double maxDiff = 0;
      for (int64_t i = 0; i < f32.numElements(); ++i)
        maxDiff = std::max(
            maxDiff, std::fabs(double{out->logits.data[i]} - f32.data[i]));
      EXPECT_GT(maxDiff, 0.0);
      EXPECT_LT(maxDiff, 0.05 * logitScale);
    }
}

} // namespace
