//===- Layers.cpp - Dense ViT layers and the whole model --------*- C++ -*-===//
//
// Dense, LayerNorm, MLP, patch embedding, self-attention, sincos2d position
// embeddings, the MAP head, encoder block, pooling/head and the
// VisionTransformerMoe forward (reference sections 1-3).
//
//===----------------------------------------------------------------------===//

#include "reference/Reference.h"

#include <algorithm>
#include <cmath>

namespace vmoe::reference {

//===----------------------------------------------------------------------===//
// Dense, LayerNorm, MLP
//===----------------------------------------------------------------------===//

Tensor dense(const Tensor &x, const Tensor &kernel) {
  return dense(x, kernel, Tensor());
}

Tensor dense(const Tensor &x, const Tensor &kernel, const Tensor &bias) {
  VMOE_REF_CHECK(kernel.rank() == 2, "dense: kernel must be (In, Out), got " +
                                         shapeToString(kernel.shape));
  VMOE_REF_CHECK(x.rank() >= 1 && x.dim(-1) == kernel.dim(0),
                 "dense: input " + shapeToString(x.shape) +
                     " does not match kernel " + shapeToString(kernel.shape));
  int64_t in = kernel.dim(0);
  int64_t out = kernel.dim(1);
  // A default-constructed tensor (rank 0, no elements) means "no bias".
  bool hasBias = !(bias.rank() == 0 && bias.numElements() == 0);
  if (hasBias)
    VMOE_REF_CHECK(bias.shape == std::vector<int64_t>{out},
                   "dense: bias " + shapeToString(bias.shape) +
                       " does not match kernel " + shapeToString(kernel.shape));
  std::vector<int64_t> outShape = x.shape;
  outShape.back() = out;
  Tensor result(outShape);
  int64_t rows =
      numElementsOf(std::vector<int64_t>(x.shape.begin(), x.shape.end() - 1));
  std::vector<double> acc(out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o)
      acc[o] = 0.0;
    for (int64_t i = 0; i < in; ++i) {
      double xv = x.data[r * in + i];
      for (int64_t o = 0; o < out; ++o)
        acc[o] += xv * kernel.data[i * out + o];
    }
    for (int64_t o = 0; o < out; ++o)
      result.data[r * out + o] =
          static_cast<float>(acc[o] + (hasBias ? bias.data[o] : 0.0));
  }
  return result;
}

Tensor dense(const Tensor &x, const DenseWeights &weights) {
  return dense(x, weights.kernel, weights.bias);
}

Tensor layerNorm(const Tensor &x, const Tensor &scale, const Tensor &bias,
                 double epsilon) {
  VMOE_REF_CHECK(x.rank() >= 1, "layerNorm of a rank-0 tensor");
  int64_t d = x.dim(-1);
  VMOE_REF_CHECK(scale.shape == std::vector<int64_t>{d} &&
                     bias.shape == std::vector<int64_t>{d},
                 "layerNorm: scale " + shapeToString(scale.shape) + " / bias " +
                     shapeToString(bias.shape) + " do not match input " +
                     shapeToString(x.shape));
  Tensor result(x.shape);
  int64_t rows = d == 0 ? 0 : x.numElements() / d;
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x.data.data() + r * d;
    double sum = 0.0, sumOfSquares = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      sum += in[i];
      sumOfSquares += static_cast<double>(in[i]) * in[i];
    }
    // Flax's "fast variance": E[x^2] - E[x]^2, clamped at 0.
    double count = static_cast<double>(d);
    double mean = sum / count;
    double variance = std::max(0.0, sumOfSquares / count - mean * mean);
    double inverseStd = 1.0 / std::sqrt(variance + epsilon);
    for (int64_t i = 0; i < d; ++i)
      result.data[r * d + i] = static_cast<float>(
          (in[i] - mean) * (inverseStd * scale.data[i]) + bias.data[i]);
  }
  return result;
}

Tensor layerNorm(const Tensor &x, const LayerNormWeights &weights,
                 double epsilon) {
  return layerNorm(x, weights.scale, weights.bias, epsilon);
}

Tensor mlpBlock(const Tensor &x, const MlpWeights &weights, GemmMath math) {
  return dense(gelu(dense(x, weights.dense0, math)), weights.dense1, math);
}

//===----------------------------------------------------------------------===//
// Embeddings
//===----------------------------------------------------------------------===//

Tensor patchEmbed(const Tensor &images, const Tensor &kernel,
                  const Tensor &bias) {
  VMOE_REF_CHECK(images.rank() == 4, "patchEmbed: images must be NHWC, got " +
                                         shapeToString(images.shape));
  VMOE_REF_CHECK(kernel.rank() == 4 && kernel.dim(2) == images.dim(3),
                 "patchEmbed: kernel " + shapeToString(kernel.shape) +
                     " is not (p, p, C, D) for images " +
                     shapeToString(images.shape));
  int64_t batch = images.dim(0);
  int64_t channels = images.dim(3);
  int64_t patchH = kernel.dim(0);
  int64_t patchW = kernel.dim(1);
  int64_t hidden = kernel.dim(3);
  VMOE_REF_CHECK(patchH >= 1 && patchW >= 1, "patchEmbed: empty kernel");
  VMOE_REF_CHECK(bias.shape == std::vector<int64_t>{hidden},
                 "patchEmbed: bias " + shapeToString(bias.shape));
  // VALID padding with stride = kernel size: trailing pixels are ignored.
  int64_t gridH = images.dim(1) / patchH;
  int64_t gridW = images.dim(2) / patchW;
  Tensor result({batch, gridH * gridW, hidden});
  std::vector<double> acc(hidden);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < gridH; ++i)
      for (int64_t j = 0; j < gridW; ++j) {
        for (int64_t o = 0; o < hidden; ++o)
          acc[o] = 0.0;
        for (int64_t di = 0; di < patchH; ++di)
          for (int64_t dj = 0; dj < patchW; ++dj)
            for (int64_t c = 0; c < channels; ++c) {
              double pixel = images.at(b, i * patchH + di, j * patchW + dj, c);
              for (int64_t o = 0; o < hidden; ++o)
                acc[o] += pixel * kernel.at(di, dj, c, o);
            }
        for (int64_t o = 0; o < hidden; ++o)
          result.at(b, i * gridW + j, o) =
              static_cast<float>(acc[o] + bias.data[o]);
      }
  return result;
}

Tensor prependClassToken(const Tensor &x, const Tensor &cls) {
  VMOE_REF_CHECK(x.rank() == 3, "prependClassToken: x must be (B, N, D)");
  int64_t batch = x.dim(0), tokens = x.dim(1), hidden = x.dim(2);
  VMOE_REF_CHECK(cls.shape == (std::vector<int64_t>{1, 1, hidden}),
                 "prependClassToken: cls " + shapeToString(cls.shape));
  Tensor result({batch, tokens + 1, hidden});
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t d = 0; d < hidden; ++d)
      result.at(b, 0, d) = cls.at(0, 0, d);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t d = 0; d < hidden; ++d)
        result.at(b, t + 1, d) = x.at(b, t, d);
  }
  return result;
}

Tensor addPositionEmbedding(const Tensor &x, const Tensor &posEmbedding) {
  VMOE_REF_CHECK(x.rank() == 3, "addPositionEmbedding: x must be (B, T, D)");
  VMOE_REF_CHECK(
      posEmbedding.shape == (std::vector<int64_t>{1, x.dim(1), x.dim(2)}),
      "addPositionEmbedding: table " + shapeToString(posEmbedding.shape) +
          " for input " + shapeToString(x.shape));
  Tensor result = x;
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t t = 0; t < x.dim(1); ++t)
      for (int64_t d = 0; d < x.dim(2); ++d)
        result.at(b, t, d) = x.at(b, t, d) + posEmbedding.at(0, t, d);
  return result;
}

//===----------------------------------------------------------------------===//
// Self-attention
//===----------------------------------------------------------------------===//

/// DenseGeneral D -> (H, Dh): x (B, T, D) -> (B, T, H, Dh).
static Tensor projectHeads(const Tensor &x, const Tensor &kernel,
                           const Tensor &bias, GemmMath math) {
  VMOE_REF_CHECK(kernel.rank() == 3 && kernel.dim(0) == x.dim(2),
                 "attention: q/k/v kernel " + shapeToString(kernel.shape) +
                     " is not (D, H, Dh)");
  int64_t heads = kernel.dim(1), headDim = kernel.dim(2);
  VMOE_REF_CHECK(bias.shape == (std::vector<int64_t>{heads, headDim}),
                 "attention: q/k/v bias " + shapeToString(bias.shape));
  DenseWeights flat{kernel.reshaped({kernel.dim(0), heads * headDim}),
                    bias.reshaped({heads * headDim})};
  return dense(x, flat, math).reshaped({x.dim(0), x.dim(1), heads, headDim});
}

Tensor multiHeadAttention(const Tensor &inputsQ, const Tensor &inputsKv,
                          const AttentionWeights &weights, GemmMath math) {
  VMOE_REF_CHECK(inputsQ.rank() == 3 && inputsKv.rank() == 3 &&
                     inputsQ.dim(0) == inputsKv.dim(0) &&
                     inputsQ.dim(2) == inputsKv.dim(2),
                 "multiHeadAttention: inputs must be (B, Tq, D) and (B, Tkv, "
                 "D), got " +
                     shapeToString(inputsQ.shape) + " and " +
                     shapeToString(inputsKv.shape));
  int64_t batch = inputsQ.dim(0), queries = inputsQ.dim(1),
          tokens = inputsKv.dim(1), hidden = inputsQ.dim(2);
  Tensor query =
      projectHeads(inputsQ, weights.queryKernel, weights.queryBias, math);
  Tensor key = projectHeads(inputsKv, weights.keyKernel, weights.keyBias, math);
  Tensor value =
      projectHeads(inputsKv, weights.valueKernel, weights.valueBias, math);
  VMOE_REF_CHECK(query.dim(2) == key.dim(2) && query.dim(3) == key.dim(3) &&
                     key.shape == value.shape,
                 "multiHeadAttention: q, k, v kernels disagree");
  int64_t heads = query.dim(2), headDim = query.dim(3);

  // Flax scales q (in float32) before the q.k product.
  float scale = static_cast<float>(std::sqrt(static_cast<double>(headDim)));
  for (float &q : query.data)
    q = q / scale;

  Tensor attended({batch, queries, heads, headDim});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      Tensor logits({queries, tokens});
      for (int64_t i = 0; i < queries; ++i)
        for (int64_t j = 0; j < tokens; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < headDim; ++d)
            dot +=
                static_cast<double>(query.at(b, i, h, d)) * key.at(b, j, h, d);
          logits.at(i, j) = static_cast<float>(dot);
        }
      Tensor probabilities = softmaxLastAxis(logits); // over the keys j
      for (int64_t i = 0; i < queries; ++i)
        for (int64_t d = 0; d < headDim; ++d) {
          double sum = 0.0;
          for (int64_t j = 0; j < tokens; ++j)
            sum += static_cast<double>(probabilities.at(i, j)) *
                   value.at(b, j, h, d);
          attended.at(b, i, h, d) = static_cast<float>(sum);
        }
    }

  const Tensor &outKernel = weights.outKernel;
  VMOE_REF_CHECK(outKernel.shape ==
                     (std::vector<int64_t>{heads, headDim, hidden}),
                 "multiHeadAttention: out kernel " +
                     shapeToString(outKernel.shape) + " is not (H, Dh, D)");
  // Output DenseGeneral contracts (H, Dh) jointly.
  return dense(attended.reshaped({batch, queries, heads * headDim}),
               {outKernel.reshaped({heads * headDim, hidden}), weights.outBias},
               math);
}

Tensor selfAttention(const Tensor &x, const AttentionWeights &weights,
                     GemmMath math) {
  VMOE_REF_CHECK(x.rank() == 3, "selfAttention: x must be (B, T, D), got " +
                                    shapeToString(x.shape));
  return multiHeadAttention(x, x, weights, math);
}

//===----------------------------------------------------------------------===//
// sincos2d position embedding, MAP head
//===----------------------------------------------------------------------===//

Tensor sincos2dTable(int64_t height, int64_t width, int64_t hidden,
                     double temperature) {
  VMOE_REF_CHECK(hidden % 4 == 0 && hidden >= 8,
                 "sincos2dTable: hidden " + std::to_string(hidden) +
                     " is not a multiple of 4 >= 8");
  int64_t quarter = hidden / 4;
  Tensor table({height * width, hidden});
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t i = 0; i < quarter; ++i) {
        double omega =
            1.0 / std::pow(temperature, static_cast<double>(i) /
                                            static_cast<double>(quarter - 1));
        double px = static_cast<double>(x) * omega;
        double py = static_cast<double>(y) * omega;
        int64_t n = y * width + x;
        table.at(n, i) = static_cast<float>(std::sin(px));
        table.at(n, quarter + i) = static_cast<float>(std::cos(px));
        table.at(n, 2 * quarter + i) = static_cast<float>(std::sin(py));
        table.at(n, 3 * quarter + i) = static_cast<float>(std::cos(py));
      }
  return table;
}

Tensor addSincos2dPositionEmbedding(const Tensor &x, int64_t height,
                                    int64_t width, double temperature) {
  VMOE_REF_CHECK(x.rank() == 3, "addSincos2dPositionEmbedding: x must be (B, "
                                "T, D)");
  int64_t grid = height * width, offset = x.dim(1) - grid;
  // vmoe raises for any other sequence length.
  VMOE_REF_CHECK(offset == 0 || offset == 1,
                 "addSincos2dPositionEmbedding: " + std::to_string(x.dim(1)) +
                     " tokens for a grid of " + std::to_string(grid));
  Tensor table = sincos2dTable(height, width, x.dim(2), temperature);
  Tensor result = x;
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t n = 0; n < grid; ++n)
      for (int64_t d = 0; d < x.dim(2); ++d)
        result.at(b, n + offset, d) = x.at(b, n + offset, d) + table.at(n, d);
  return result;
}

Tensor mapHead(const Tensor &x, const MapHeadWeights &weights) {
  VMOE_REF_CHECK(x.rank() == 3, "mapHead: x must be (B, T, D)");
  int64_t batch = x.dim(0), hidden = x.dim(2);
  VMOE_REF_CHECK(weights.probe.shape == (std::vector<int64_t>{1, 1, hidden}),
                 "mapHead: probe " + shapeToString(weights.probe.shape));
  // jnp.tile(probe, [B, 1, 1]).
  Tensor probes({batch, 1, hidden});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t d = 0; d < hidden; ++d)
      probes.at(b, 0, d) = weights.probe.at(0, 0, d);
  Tensor attended = multiHeadAttention(probes, x, weights.attention);
  Tensor y = mlpBlock(layerNorm(attended, weights.layerNorm), weights.mlp);
  Tensor result({batch, hidden});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t d = 0; d < hidden; ++d)
      result.at(b, d) = attended.at(b, 0, d) + y.at(b, 0, d);
  return result;
}

//===----------------------------------------------------------------------===//
// Encoder block, head, model
//===----------------------------------------------------------------------===//

static Tensor add(const Tensor &a, const Tensor &b) {
  VMOE_REF_CHECK(a.shape == b.shape, "add: shapes " + shapeToString(a.shape) +
                                         " and " + shapeToString(b.shape));
  Tensor result = a;
  for (int64_t i = 0; i < a.numElements(); ++i)
    result.data[i] = a.data[i] + b.data[i];
  return result;
}

Result<EncoderBlockOutput> encoderBlock(const Tensor &x,
                                        const EncoderBlockWeights &weights,
                                        const MoeConfig &moeConfig,
                                        GemmMath denseMath) {
  VMOE_REF_CHECK(weights.mlp.has_value() != weights.moe.has_value(),
                 "encoderBlock: exactly one of mlp and moe must be set");
  Tensor afterAttention = add(x, selfAttention(layerNorm(x, weights.layerNorm0),
                                               weights.attention, denseMath));
  Tensor normed = layerNorm(afterAttention, weights.layerNorm1);
  EncoderBlockOutput result;
  if (weights.mlp) {
    result.output =
        add(afterAttention, mlpBlock(normed, *weights.mlp, denseMath));
    return result;
  }
  Result<MoeOutput> moe = sparseMoe(normed, *weights.moe, moeConfig);
  if (!moe)
    return moe.takeError();
  // Tokens whose assignments were all dropped get 0 here, so the residual
  // passes them through unchanged.
  result.output = add(afterAttention, moe->output);
  result.moe = std::move(moe).value();
  return result;
}

Tensor pool(const Tensor &x, Classifier classifier) {
  VMOE_REF_CHECK(x.rank() == 3 && x.dim(1) >= 1,
                 "pool: x must be (B, T, D) with T >= 1");
  int64_t batch = x.dim(0), tokens = x.dim(1), hidden = x.dim(2);
  Tensor result({batch, hidden});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t d = 0; d < hidden; ++d) {
      if (classifier == Classifier::Gap) {
        double sum = 0.0;
        for (int64_t t = 0; t < tokens; ++t)
          sum += x.at(b, t, d);
        result.at(b, d) = static_cast<float>(sum / static_cast<double>(tokens));
      } else {
        result.at(b, d) = x.at(b, 0, d);
      }
    }
  return result;
}

Tensor classifierHead(const Tensor &pooled,
                      const std::optional<DenseWeights> &preLogits,
                      const DenseWeights &head) {
  Tensor features = pooled;
  if (preLogits) {
    features = dense(pooled, *preLogits);
    for (float &v : features.data)
      v = static_cast<float>(std::tanh(static_cast<double>(v)));
  }
  return dense(features, head);
}

Result<ModelOutput> visionTransformerMoe(const Tensor &images,
                                         const ModelWeights &weights,
                                         const ModelConfig &config) {
  Tensor x = patchEmbed(images, weights.embeddingKernel, weights.embeddingBias);
  int64_t patch = weights.embeddingKernel.dim(0);
  int64_t gridH = images.dim(1) / patch, gridW = images.dim(2) / patch;
  if (config.classifier == Classifier::Token)
    x = prependClassToken(x, weights.cls);
  if (config.sincos2dTemperature)
    x = addSincos2dPositionEmbedding(x, gridH, gridW,
                                     *config.sincos2dTemperature);
  else if (weights.posEmbedding.numElements() != 0)
    x = addPositionEmbedding(x, weights.posEmbedding);
  ModelOutput result;
  for (size_t i = 0; i < weights.blocks.size(); ++i) {
    Result<EncoderBlockOutput> block =
        encoderBlock(x, weights.blocks[i], config.moe,
                     config.int8DenseMath ? GemmMath::Int8 : GemmMath::F32);
    if (!block)
      return Error{"encoderblock_" + std::to_string(i) + ": " + block.error()};
    x = std::move(block->output);
    if (block->moe)
      result.moeLayers.emplace_back(static_cast<int64_t>(i),
                                    std::move(*block->moe));
  }
  result.encoded = layerNorm(x, weights.encoderNorm);
  Tensor pooled;
  if (config.classifier == Classifier::Map) {
    VMOE_REF_CHECK(weights.mapHead.has_value(),
                   "visionTransformerMoe: classifier 'map' needs mapHead");
    pooled = mapHead(result.encoded, *weights.mapHead);
  } else {
    pooled = pool(result.encoded, config.classifier);
  }
  result.logits = classifierHead(pooled, weights.preLogits, weights.head);
  return result;
}

} // namespace vmoe::reference
