//===- LayersTest.cpp - dense ViT layers, encoder block and model ---------===//

#include "TestUtil.h"

using namespace vmoe::reference;
using namespace vmoe::reference::test;

namespace {

TEST(DenseTest, HandComputed) {
  Tensor x({2, 2}, {1, 2, 3, 4});
  Tensor kernel({2, 3}, {1, 0, -1, //
                         2, 1, 0});
  Tensor bias({3}, {0.5f, 0, 0});
  EXPECT_EQ(dense(x, kernel, bias).data,
            (std::vector<float>{5.5f, 2, -1, 11.5f, 4, -3}));
  EXPECT_EQ(dense(x, kernel).data, (std::vector<float>{5, 2, -1, 11, 4, -3}));
  // Leading axes are kept.
  EXPECT_EQ(dense(x.reshaped({1, 2, 2}), kernel).shape,
            (std::vector<int64_t>{1, 2, 3}));
}

TEST(LayerNormTest, HandComputed) {
  // mu = 2.5, var = mean(x^2) - mu^2 = 7.5 - 6.25 = 1.25.
  Tensor x({4}, {1, 2, 3, 4});
  Tensor scale({4}, {1, 2, 1, 1});
  Tensor bias({4}, {0, 0, 1, -1});
  Tensor y = layerNorm(x, scale, bias);
  double inverseStd = 1.0 / std::sqrt(1.25 + 1e-6);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_NEAR(y.data[i],
                (x.data[i] - 2.5) * inverseStd * scale.data[i] + bias.data[i],
                1e-6);
}

TEST(LayerNormTest, EpsilonIsOneEMinusSix) {
  // var = 1e-6 equals eps: y = +-1e-3 / sqrt(2e-6) = +-1/sqrt(2), not +-1.
  Tensor y = layerNorm(Tensor({2}, {0.0f, 2e-3f}), Tensor({2}, {1, 1}),
                       Tensor({2}, {0, 0}));
  EXPECT_NEAR(y.data[0], -0.70710678, 2e-5);
  EXPECT_NEAR(y.data[1], 0.70710678, 2e-5);
  // A custom epsilon is honoured.
  Tensor z = layerNorm(Tensor({2}, {0.0f, 2e-3f}), Tensor({2}, {1, 1}),
                       Tensor({2}, {0, 0}), /*epsilon=*/0.0);
  EXPECT_NEAR(z.data[1], 1.0, 1e-5);
}

TEST(LayerNormTest, ConstantRowGivesTheBias) {
  Tensor y = layerNorm(Tensor({2, 3}, {3, 3, 3, -7, -7, -7}),
                       Tensor({3}, {2, 2, 2}), Tensor({3}, {.5f, -1, 0}));
  EXPECT_EQ(y.data, (std::vector<float>{.5f, -1, 0, .5f, -1, 0}));
}

TEST(LayerNormTest, MatchesTwoPassVarianceOnRandomRows) {
  // The fast variance form equals the two-pass one up to rounding when the
  // mean is modest; tolerance 1e-5 absolute on O(1) outputs.
  std::mt19937 rng(11);
  Tensor x = randomTensor({5, 16}, rng, -3, 3);
  Tensor scale = randomTensor({16}, rng), bias = randomTensor({16}, rng);
  Tensor y = layerNorm(x, scale, bias);
  for (int64_t r = 0; r < 5; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < 16; ++i)
      mean += x.at(r, i) / 16.0;
    for (int64_t i = 0; i < 16; ++i)
      var += (x.at(r, i) - mean) * (x.at(r, i) - mean) / 16.0;
    for (int64_t i = 0; i < 16; ++i)
      EXPECT_NEAR(y.at(r, i),
                  (x.at(r, i) - mean) / std::sqrt(var + 1e-6) * scale.at(i) +
                      bias.at(i),
                  1e-5);
  }
}

TEST(MlpBlockTest, HandComputed) {
  // x = 1: h = 2*1 + 1 = 3, gelu(3) = 2.996362607918227, y = 3 * that + .5.
  MlpWeights w{{Tensor({1, 1}, {2}), Tensor({1}, {1})},
               {Tensor({1, 1}, {3}), Tensor({1}, {.5f})}};
  Tensor y = mlpBlock(Tensor({1, 1}, {1}), w);
  EXPECT_NEAR(y.data[0], 3 * 2.996362607918227 + .5, 1e-6);
}

TEST(PatchEmbedTest, HandComputed) {
  // One 2x2x3 patch holding 1..12, kernel of ones, bias .5: 78 + .5.
  Tensor images({1, 2, 2, 3});
  for (int64_t i = 0; i < 12; ++i)
    images.data[i] = static_cast<float>(i + 1);
  Tensor y = patchEmbed(images, Tensor::filled({2, 2, 3, 1}, 1.0f),
                        Tensor({1}, {.5f}));
  EXPECT_EQ(y.shape, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(y.data[0], 78.5f);
}

TEST(PatchEmbedTest, EqualsFlattenedPatchesTimesReshapedKernel) {
  // Section 2: patches flattened in (row, col, channel) order times
  // kernel.reshape(p*p*3, D). Pixels past floor(H/p)*p are ignored.
  std::mt19937 rng(12);
  const int64_t p = 2, hidden = 5;
  Tensor images = randomTensor({2, 5, 7, 3}, rng);
  Tensor kernel = randomTensor({p, p, 3, hidden}, rng);
  Tensor bias = randomTensor({hidden}, rng);
  Tensor y = patchEmbed(images, kernel, bias);
  const int64_t gridH = 2, gridW = 3;
  ASSERT_EQ(y.shape, (std::vector<int64_t>{2, gridH * gridW, hidden}));
  Tensor flatKernel = kernel.reshaped({p * p * 3, hidden});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < gridH; ++i)
      for (int64_t j = 0; j < gridW; ++j) {
        std::vector<double> patch;
        for (int64_t di = 0; di < p; ++di)
          for (int64_t dj = 0; dj < p; ++dj)
            for (int64_t c = 0; c < 3; ++c)
              patch.push_back(images.at(b, i * p + di, j * p + dj, c));
        for (int64_t o = 0; o < hidden; ++o) {
          double sum = bias.at(o);
          for (int64_t r = 0; r < p * p * 3; ++r)
            sum += patch[r] * flatKernel.at(r, o);
          EXPECT_NEAR(y.at(b, i * gridW + j, o), sum, 1e-6);
        }
      }
  // Changing the ignored last row and column changes nothing.
  Tensor changed = images;
  for (int64_t c = 0; c < 3; ++c) {
    changed.at(0, 4, 0, c) = 100.0f;
    changed.at(1, 0, 6, c) = -100.0f;
  }
  EXPECT_TRUE(bitwiseEqual(patchEmbed(changed, kernel, bias), y));
}

TEST(EmbeddingTest, ClassTokenAndPositionEmbedding) {
  Tensor x({2, 1, 2}, {1, 2, 3, 4});
  Tensor withCls = prependClassToken(x, Tensor({1, 1, 2}, {9, 8}));
  EXPECT_EQ(withCls.shape, (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(withCls.data, (std::vector<float>{9, 8, 1, 2, 9, 8, 3, 4}));
  // The position table covers the cls row too.
  Tensor pos({1, 2, 2}, {.5f, .25f, 10, 20});
  EXPECT_EQ(addPositionEmbedding(withCls, pos).data,
            (std::vector<float>{9.5f, 8.25f, 11, 22, 9.5f, 8.25f, 13, 24}));
}

AttentionWeights identityAttention() {
  // D = 2, H = 1, Dh = 2: q = k = v = x, out = o.
  AttentionWeights w;
  w.queryKernel = w.keyKernel = w.valueKernel = Tensor({2, 1, 2}, {1, 0, 0, 1});
  w.queryBias = w.keyBias = w.valueBias = Tensor({1, 2});
  w.outKernel = Tensor({1, 2, 2}, {1, 0, 0, 1});
  w.outBias = Tensor({2});
  return w;
}

TEST(AttentionTest, HandComputedTwoTokens) {
  // logits = x_i . x_j / sqrt(2) = [[1/sqrt2, 0], [0, 1/sqrt2]], so row 0
  // attends with weights (a, 1-a), a = sigmoid(1/sqrt2) = 0.66976154932...
  Tensor x({1, 2, 2}, {1, 0, 0, 1});
  Tensor y = selfAttention(x, identityAttention());
  const double a = 0.6697615493266569;
  EXPECT_NEAR(y.at(0, 0, 0), a, 1e-6);
  EXPECT_NEAR(y.at(0, 0, 1), 1 - a, 1e-6);
  EXPECT_NEAR(y.at(0, 1, 0), 1 - a, 1e-6);
  EXPECT_NEAR(y.at(0, 1, 1), a, 1e-6);
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

TEST(AttentionTest, SingleTokenIsTheProjectedValue) {
  // softmax over one key is 1: y = out(v(x)).
  std::mt19937 rng(13);
  AttentionWeights w = randomAttention(4, 2, 3, rng);
  Tensor x = randomTensor({1, 1, 4}, rng);
  Tensor v =
      dense(x, w.valueKernel.reshaped({4, 6}), w.valueBias.reshaped({6}));
  Tensor expected = dense(v, w.outKernel.reshaped({6, 4}), w.outBias);
  EXPECT_TRUE(allClose(selfAttention(x, w), expected, 1e-6));
}

TEST(AttentionTest, MatchesMatrixFormulation) {
  // Independent formulation in double: the PyTorch-style in_proj =
  // kernel.reshape(D, H*Dh), scale applied to the logits instead of q.
  // Tolerance 1e-5 absolute (outputs are O(1)).
  std::mt19937 rng(14);
  const int64_t batch = 2, tokens = 5, hidden = 6, heads = 3, headDim = 4;
  AttentionWeights w = randomAttention(hidden, heads, headDim, rng);
  Tensor x = randomTensor({batch, tokens, hidden}, rng);
  Tensor y = selfAttention(x, w);
  const int64_t width = heads * headDim;
  auto project = [&](const Tensor &kernel, const Tensor &bias, int64_t b) {
    std::vector<double> out(tokens * width);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t f = 0; f < width; ++f) {
        double sum = bias.data[f];
        for (int64_t d = 0; d < hidden; ++d)
          sum +=
              static_cast<double>(x.at(b, t, d)) * kernel.data[d * width + f];
        out[t * width + f] = sum;
      }
    return out;
  };
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> q = project(w.queryKernel, w.queryBias, b);
    std::vector<double> k = project(w.keyKernel, w.keyBias, b);
    std::vector<double> v = project(w.valueKernel, w.valueBias, b);
    std::vector<double> o(tokens * width, 0.0);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < tokens; ++i) {
        std::vector<double> p(tokens);
        double maxLogit = -1e300, total = 0;
        for (int64_t j = 0; j < tokens; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < headDim; ++d)
            dot +=
                q[i * width + h * headDim + d] * k[j * width + h * headDim + d];
          p[j] = dot / std::sqrt(static_cast<double>(headDim));
          maxLogit = std::max(maxLogit, p[j]);
        }
        for (double &pj : p)
          total += (pj = std::exp(pj - maxLogit));
        for (int64_t j = 0; j < tokens; ++j)
          for (int64_t d = 0; d < headDim; ++d)
            o[i * width + h * headDim + d] +=
                p[j] / total * v[j * width + h * headDim + d];
      }
    for (int64_t i = 0; i < tokens; ++i)
      for (int64_t d = 0; d < hidden; ++d) {
        double sum = w.outBias.at(d);
        for (int64_t f = 0; f < width; ++f)
          sum += o[i * width + f] * w.outKernel.data[f * hidden + d];
        EXPECT_NEAR(y.at(b, i, d), sum, 1e-5);
      }
  }
}

LayerNormWeights randomLayerNorm(int64_t hidden, std::mt19937 &rng) {
  return {randomTensor({hidden}, rng, 0.5f, 1.5f),
          randomTensor({hidden}, rng, -0.1f, 0.1f)};
}

TEST(EncoderBlockTest, DenseBlockIsPreLnResidual) {
  std::mt19937 rng(15);
  const int64_t hidden = 4;
  EncoderBlockWeights w{
      randomLayerNorm(hidden, rng), randomAttention(hidden, 2, 2, rng),
      randomLayerNorm(hidden, rng),
      MlpWeights{{randomTensor({hidden, 8}, rng), randomTensor({8}, rng)},
                 {randomTensor({8, hidden}, rng), randomTensor({hidden}, rng)}},
      std::nullopt};
  Tensor x = randomTensor({2, 3, hidden}, rng);
  Result<EncoderBlockOutput> out = encoderBlock(x, w, MoeConfig{});
  ASSERT_TRUE(out.ok()) << out.error();
  EXPECT_FALSE(out->moe.has_value());
  Tensor attn = selfAttention(layerNorm(x, w.layerNorm0), w.attention);
  Tensor mid = x;
  for (int64_t i = 0; i < x.numElements(); ++i)
    mid.data[i] += attn.data[i];
  Tensor mlp = mlpBlock(layerNorm(mid, w.layerNorm1), *w.mlp);
  Tensor expected = mid;
  for (int64_t i = 0; i < x.numElements(); ++i)
    expected.data[i] += mlp.data[i];
  EXPECT_TRUE(bitwiseEqual(out->output, expected));
}

TEST(EncoderBlockTest, DroppedTokensPassThroughTheMoeResidual) {
  std::mt19937 rng(16);
  const int64_t hidden = 4, experts = 2;
  EncoderBlockWeights w;
  w.layerNorm0 = randomLayerNorm(hidden, rng);
  w.attention = randomAttention(hidden, 2, 2, rng);
  // LN1 with zero scale and bias e_0 makes every token's router input
  // (1, 0, 0, 0), and the router then prefers expert 0 for all tokens.
  w.layerNorm1 = {Tensor({hidden}), Tensor({hidden}, {1, 0, 0, 0})};
  MoeWeights moe;
  moe.routerKernel = Tensor({hidden, experts}, {3, -3, 0, 0, 0, 0, 0, 0});
  moe.experts = {randomTensor({experts, hidden, 5}, rng),
                 randomTensor({experts, 5}, rng),
                 randomTensor({experts, 5, hidden}, rng),
                 randomTensor({experts, hidden}, rng)};
  w.moe = moe;
  MoeConfig config;
  config.groupSize = 6;
  config.numSelectedExperts = 1;
  config.capacity = 1;
  Tensor x = randomTensor({2, 3, hidden}, rng);
  Result<EncoderBlockOutput> out = encoderBlock(x, w, config);
  ASSERT_TRUE(out.ok()) << out.error();
  ASSERT_TRUE(out->moe.has_value());
  EXPECT_EQ(out->moe->stats.assignmentsKept, 1);
  Tensor attn = selfAttention(layerNorm(x, w.layerNorm0), w.attention);
  for (int64_t i = 0; i < x.numElements(); ++i) {
    float afterAttention = x.data[i] + attn.data[i];
    if (i < hidden) // token 0 holds the only slot
      EXPECT_NE(out->output.data[i], afterAttention);
    else
      EXPECT_EQ(out->output.data[i], afterAttention) << i;
  }
}

TEST(HeadTest, PoolingAndPreLogits) {
  Tensor x({1, 3, 2}, {1, 2, 3, 4, 5, 9});
  EXPECT_EQ(pool(x, Classifier::Token).data, (std::vector<float>{1, 2}));
  EXPECT_EQ(pool(x, Classifier::First).data, (std::vector<float>{1, 2}));
  EXPECT_EQ(pool(x, Classifier::Gap).data, (std::vector<float>{3, 5}));
  // pre_logits: tanh(x W + b), then the head.
  DenseWeights preLogits{Tensor({2, 1}, {1, 1}), Tensor({1}, {-2.5f})};
  DenseWeights head{Tensor({1, 2}, {2, -1}), Tensor({2}, {0, 1})};
  Tensor logits = classifierHead(Tensor({1, 2}, {1, 2}), preLogits, head);
  double t = std::tanh(0.5);
  EXPECT_NEAR(logits.at(0, 0), 2 * t, 1e-7);
  EXPECT_NEAR(logits.at(0, 1), 1 - t, 1e-7);
  EXPECT_EQ(classifierHead(Tensor({1, 2}, {1, 2}), std::nullopt,
                           DenseWeights{Tensor({2, 1}, {1, 1}), Tensor()})
                .data,
            (std::vector<float>{3}));
}

ModelWeights tinyModel(std::mt19937 &rng) {
  // 4x4 RGB images, p = 2: 4 patches + cls = 5 tokens; D = 4, 2 heads,
  // block 0 dense, block 1 MoE with E = 4.
  const int64_t hidden = 4, mlpDim = 8, experts = 4;
  ModelWeights w;
  w.embeddingKernel = randomTensor({2, 2, 3, hidden}, rng);
  w.embeddingBias = randomTensor({hidden}, rng);
  w.cls = randomTensor({1, 1, hidden}, rng);
  w.posEmbedding = randomTensor({1, 5, hidden}, rng);
  for (int block = 0; block < 2; ++block) {
    EncoderBlockWeights b;
    b.layerNorm0 = randomLayerNorm(hidden, rng);
    b.attention = randomAttention(hidden, 2, 2, rng);
    b.layerNorm1 = randomLayerNorm(hidden, rng);
    if (block == 0) {
      b.mlp = MlpWeights{
          {randomTensor({hidden, mlpDim}, rng), randomTensor({mlpDim}, rng)},
          {randomTensor({mlpDim, hidden}, rng), randomTensor({hidden}, rng)}};
    } else {
      b.moe = MoeWeights{randomTensor({hidden, experts}, rng, -2, 2),
                         {randomTensor({experts, hidden, mlpDim}, rng),
                          randomTensor({experts, mlpDim}, rng),
                          randomTensor({experts, mlpDim, hidden}, rng),
                          randomTensor({experts, hidden}, rng)}};
    }
    w.blocks.push_back(b);
  }
  w.encoderNorm = randomLayerNorm(hidden, rng);
  w.preLogits =
      DenseWeights{randomTensor({hidden, 3}, rng), randomTensor({3}, rng)};
  w.head = {randomTensor({3, 7}, rng), randomTensor({7}, rng)};
  return w;
}

TEST(ModelTest, ForwardIsTheCompositionOfTheLayers) {
  std::mt19937 rng(17);
  ModelWeights w = tinyModel(rng);
  Tensor images = randomTensor({2, 4, 4, 3}, rng);
  ModelConfig config;
  config.moe.groupSize = 10; // both images in one group
  config.moe.numSelectedExperts = 2;
  config.moe.capacityFactor = 1.0; // C = roundup4(ceil(10*2/4)) = 8
  config.moe.batchPriority = true;
  Result<ModelOutput> out = visionTransformerMoe(images, w, config);
  ASSERT_TRUE(out.ok()) << out.error();
  ASSERT_EQ(out->moeLayers.size(), 1u);
  EXPECT_EQ(out->moeLayers[0].first, 1);
  EXPECT_EQ(out->moeLayers[0].second.routing.capacity, 8);

  Tensor x = addPositionEmbedding(
      prependClassToken(patchEmbed(images, w.embeddingKernel, w.embeddingBias),
                        w.cls),
      w.posEmbedding);
  for (const EncoderBlockWeights &block : w.blocks)
    x = encoderBlock(x, block, config.moe)->output;
  Tensor encoded = layerNorm(x, w.encoderNorm);
  Tensor logits =
      classifierHead(pool(encoded, Classifier::Token), w.preLogits, w.head);
  EXPECT_TRUE(bitwiseEqual(out->encoded, encoded));
  EXPECT_TRUE(bitwiseEqual(out->logits, logits));
  EXPECT_EQ(out->logits.shape, (std::vector<int64_t>{2, 7}));
}

TEST(ModelTest, GroupSizeErrorNamesTheBlock) {
  std::mt19937 rng(18);
  ModelWeights w = tinyModel(rng);
  ModelConfig config;
  config.moe.groupSize = 4; // does not divide 2 * 5 tokens
  config.moe.numSelectedExperts = 2;
  config.moe.capacityFactor = 1.0;
  Result<ModelOutput> out =
      visionTransformerMoe(randomTensor({2, 4, 4, 3}, rng), w, config);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().rfind("encoderblock_1: group_size = 4", 0), 0u)
      << out.error();
}

TEST(ModelTest, GapClassifierHasNoClassToken) {
  std::mt19937 rng(19);
  ModelWeights w = tinyModel(rng);
  w.cls = Tensor();
  w.posEmbedding = randomTensor({1, 4, 4}, rng);
  ModelConfig config;
  config.classifier = Classifier::Gap;
  config.moe.groupSize = 4;
  config.moe.numSelectedExperts = 1;
  config.moe.capacityFactor = 1.05;
  Result<ModelOutput> out =
      visionTransformerMoe(randomTensor({1, 4, 4, 3}, rng), w, config);
  ASSERT_TRUE(out.ok()) << out.error();
  EXPECT_EQ(out->encoded.shape, (std::vector<int64_t>{1, 4, 4}));
}

} // namespace
