//===- Int8.cpp - Symmetric int8 quantization and int8 GEMMs ----*- C++ -*-===//
//
// The fixed int8 numerics of `--expert-math=int8` and `--dense-math=int8`
// (see Reference.h): weights per output channel, activations per row, exact
// int32 accumulation and the f32 epilogue in the stated order. Each float
// step is one IEEE operation written as its own statement, so the compiler
// cannot contract the epilogue into an FMA.
//
//===----------------------------------------------------------------------===//

#include "reference/Reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace vmoe::reference {

float int8Scale(float amax) {
  VMOE_REF_CHECK(std::isfinite(amax) && amax >= 0.0f,
                 "int8Scale: amax " + std::to_string(amax) +
                     " is not a finite magnitude");
  // An all-zero row or channel quantizes to zeros with scale 1 (not 0, which
  // would divide 0 by 0).
  if (amax == 0.0f)
    return 1.0f;
  return amax / 127.0f;
}

int8_t quantizeInt8(float value, float scale) {
  VMOE_REF_CHECK(std::isfinite(value), "quantizeInt8: value is not finite");
  VMOE_REF_CHECK(std::isfinite(scale) && scale > 0.0f,
                 "quantizeInt8: scale " + std::to_string(scale) +
                     " is not finite and positive");
  // Divide (not multiply by 1/scale), round half to even (nearbyint in the
  // default rounding mode), then clamp to the symmetric range.
  float scaled = value / scale;
  float rounded = std::nearbyint(scaled);
  if (rounded > 127.0f)
    rounded = 127.0f;
  if (rounded < -127.0f)
    rounded = -127.0f;
  return static_cast<int8_t>(rounded);
}

Int8Quantized quantizeWeightsInt8(const Tensor &kernel) {
  VMOE_REF_CHECK(kernel.rank() == 2,
                 "quantizeWeightsInt8: kernel must be (K, N), got " +
                     shapeToString(kernel.shape));
  int64_t in = kernel.dim(0), out = kernel.dim(1);
  Int8Quantized result{Int8Tensor(kernel.shape), Tensor({out})};
  for (int64_t n = 0; n < out; ++n) {
    float amax = 0.0f;
    for (int64_t k = 0; k < in; ++k)
      amax = std::max(amax, std::fabs(kernel.data[k * out + n]));
    float scale = int8Scale(amax);
    result.scales.data[n] = scale;
    for (int64_t k = 0; k < in; ++k)
      result.values.data[k * out + n] =
          quantizeInt8(kernel.data[k * out + n], scale);
  }
  return result;
}

Int8Quantized quantizeRowsInt8(const Tensor &x) {
  VMOE_REF_CHECK(x.rank() >= 1, "quantizeRowsInt8 of a rank-0 tensor");
  int64_t width = x.dim(-1);
  std::vector<int64_t> rowShape(x.shape.begin(), x.shape.end() - 1);
  int64_t rows = numElementsOf(rowShape);
  Int8Quantized result{Int8Tensor(x.shape), Tensor(rowShape)};
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x.data.data() + r * width;
    float amax = 0.0f;
    for (int64_t k = 0; k < width; ++k)
      amax = std::max(amax, std::fabs(in[k]));
    float scale = int8Scale(amax);
    result.scales.data[r] = scale;
    for (int64_t k = 0; k < width; ++k)
      result.values.data[r * width + k] = quantizeInt8(in[k], scale);
  }
  return result;
}

IntTensor int8MatMul(const Int8Tensor &x, const Int8Tensor &w) {
  VMOE_REF_CHECK(x.rank() >= 1 && w.rank() == 2 && x.dim(-1) == w.dim(0),
                 "int8MatMul: " + shapeToString(x.shape) + " times " +
                     shapeToString(w.shape));
  int64_t in = w.dim(0), out = w.dim(1);
  // |acc| <= K * 127 * 127 must fit int32: the kernels accumulate in int32
  // and an overflow there would make them disagree with this sum.
  VMOE_REF_CHECK(in <= std::numeric_limits<int32_t>::max() / (127 * 127),
                 "int8MatMul: K = " + std::to_string(in) +
                     " could overflow an int32 accumulator");
  std::vector<int64_t> outShape = x.shape;
  outShape.back() = out;
  IntTensor result(outShape);
  int64_t rows = in == 0 ? 0 : x.numElements() / in;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < out; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < in; ++k)
        acc += static_cast<int32_t>(x.data[r * in + k]) *
               static_cast<int32_t>(w.data[k * out + n]);
      result.data[r * out + n] = acc;
    }
  return result;
}

Tensor int8Epilogue(const IntTensor &acc, const Tensor &rowScales,
                    const Tensor &channelScales, const Tensor &bias) {
  VMOE_REF_CHECK(acc.rank() >= 1, "int8Epilogue of a rank-0 tensor");
  int64_t out = acc.dim(-1);
  int64_t rows = out == 0 ? 0 : acc.numElements() / out;
  VMOE_REF_CHECK(rowScales.numElements() == rows &&
                     channelScales.shape == std::vector<int64_t>{out},
                 "int8Epilogue: scales " + shapeToString(rowScales.shape) +
                     " / " + shapeToString(channelScales.shape) +
                     " for accumulators " + shapeToString(acc.shape));
  bool hasBias = !(bias.rank() == 0 && bias.numElements() == 0);
  if (hasBias)
    VMOE_REF_CHECK(bias.shape == std::vector<int64_t>{out},
                   "int8Epilogue: bias " + shapeToString(bias.shape));
  Tensor result(acc.shape);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < out; ++n) {
      // ((float)acc * scale_x) * scale_w + bias, one rounding per step.
      float value = static_cast<float>(acc.data[r * out + n]);
      float rowScaled = value * rowScales.data[r];
      float scaled = rowScaled * channelScales.data[n];
      result.data[r * out + n] = hasBias ? scaled + bias.data[n] : scaled;
    }
  return result;
}

Tensor denseInt8(const Tensor &x, const Tensor &kernel, const Tensor &bias) {
  VMOE_REF_CHECK(kernel.rank() == 2 && x.rank() >= 1 &&
                     x.dim(-1) == kernel.dim(0),
                 "denseInt8: input " + shapeToString(x.shape) +
                     " does not match kernel " + shapeToString(kernel.shape));
  Int8Quantized qx = quantizeRowsInt8(x);
  Int8Quantized qw = quantizeWeightsInt8(kernel);
  return int8Epilogue(int8MatMul(qx.values, qw.values), qx.scales, qw.scales,
                      bias);
}

Tensor dense(const Tensor &x, const DenseWeights &weights, GemmMath math) {
  if (math == GemmMath::Int8)
    return denseInt8(x, weights.kernel, weights.bias);
  return dense(x, weights);
}

} // namespace vmoe::reference
