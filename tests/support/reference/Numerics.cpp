//===- Numerics.cpp - Scalar numerics and capacity --------------*- C++ -*-===//
//
// bf16 rounding, GELU, softmax, Python-style rounding and the capacity rule.
//
//===----------------------------------------------------------------------===//

#include "reference/Reference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vmoe::reference {

void fatal(const char *file, int line, const std::string &message) {
  std::fprintf(stderr, "%s:%d: reference check failed: %s\n", file, line,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

int64_t numElementsOf(const std::vector<int64_t> &shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    VMOE_REF_CHECK(d >= 0, "negative dimension in " + shapeToString(shape));
    count *= d;
  }
  return count;
}

std::string shapeToString(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i != 0)
      text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + ")";
}

//===----------------------------------------------------------------------===//
// bfloat16
//===----------------------------------------------------------------------===//

uint16_t floatToBf16Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value)) {
    // Keep sign and high payload bits and set the quiet bit: rounding the
    // mantissa could otherwise carry a NaN into infinity, and a payload that
    // lives only in the low 16 bits would truncate to infinity.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Round to nearest even on the 16 dropped bits: add 0x7FFF, plus 1 when
  // the kept part is odd, so an exact half rounds towards the even result.
  // Carries into the exponent give the right answer, up to infinity.
  uint32_t keptLsb = (bits >> 16) & 1u;
  bits += 0x7FFFu + keptLsb;
  return static_cast<uint16_t>(bits >> 16);
}

float bf16BitsToFloat(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

float roundToBf16(float value) {
  return bf16BitsToFloat(floatToBf16Bits(value));
}

Tensor roundToBf16(const Tensor &x) {
  Tensor result = x;
  for (float &v : result.data)
    v = roundToBf16(v);
  return result;
}

//===----------------------------------------------------------------------===//
// GELU, softmax
//===----------------------------------------------------------------------===//

float gelu(float x) {
  constexpr double kPi = 3.14159265358979323846;
  double v = x;
  double inner = std::sqrt(2.0 / kPi) * (v + 0.044715 * v * v * v);
  return static_cast<float>(0.5 * v * (1.0 + std::tanh(inner)));
}

Tensor gelu(const Tensor &x) {
  Tensor result = x;
  for (float &v : result.data)
    v = gelu(v);
  return result;
}

Tensor softmaxLastAxis(const Tensor &x) {
  VMOE_REF_CHECK(x.rank() >= 1, "softmax of a rank-0 tensor");
  int64_t n = x.dim(-1);
  int64_t rows = n == 0 ? 0 : x.numElements() / n;
  Tensor result(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x.data.data() + r * n;
    float *out = result.data.data() + r * n;
    double maxValue = in[0];
    for (int64_t i = 1; i < n; ++i)
      maxValue = std::max(maxValue, static_cast<double>(in[i]));
    double sum = 0.0;
    std::vector<double> exps(n);
    for (int64_t i = 0; i < n; ++i) {
      exps[i] = std::exp(static_cast<double>(in[i]) - maxValue);
      sum += exps[i];
    }
    for (int64_t i = 0; i < n; ++i)
      out[i] = static_cast<float>(exps[i] / sum);
  }
  return result;
}

double roundHalfToEven(double value) {
  double lower = std::floor(value);
  // Exact: the fractional part of a double is representable.
  double fraction = value - lower;
  if (fraction < 0.5)
    return lower;
  if (fraction > 0.5)
    return lower + 1.0;
  return std::fmod(lower, 2.0) == 0.0 ? lower : lower + 1.0;
}

float valueRangeMinusOneOne(uint8_t pixel) {
  // Same float32 operations, in the same order, as vmoe's value_range.
  float x = static_cast<float>(pixel);
  float unit = (x - 0.0f) / (255.0f - 0.0f);
  return -1.0f + 2.0f * unit;
}

//===----------------------------------------------------------------------===//
// Capacity
//===----------------------------------------------------------------------===//

Result<int64_t> computeCapacity(int64_t numTokens, int64_t numExperts,
                                double capacityFactor, int64_t multipleOf,
                                CapacityRounding rounding) {
  if (numExperts < 1)
    return Error{"num_experts = " + std::to_string(numExperts) +
                 " must be >= 1"};
  // Left to right in double, as Python evaluates
  // `num_tokens * capacity_factor / num_experts`; the order matters for
  // results a hair above an integer (e.g. 650 * 1.12 / 7 =
  // 104.00000000000001, which ceils to 105).
  double value = static_cast<double>(numTokens) * capacityFactor /
                 static_cast<double>(numExperts);
  if (!std::isfinite(value))
    return Error{"capacity is not finite for capacity_factor = " +
                 std::to_string(capacityFactor)};
  double rounded = rounding == CapacityRounding::Ceil ? std::ceil(value)
                                                      : roundHalfToEven(value);
  if (!(rounded >= 1.0))
    return Error{"num_tokens = " + std::to_string(numTokens) +
                 ", num_experts = " + std::to_string(numExperts) +
                 " and capacity_factor = " + std::to_string(capacityFactor) +
                 " lead to capacity = " + std::to_string(rounded) +
                 ", but it must be greater than or equal to 1"};
  if (rounded > 4.0e18)
    return Error{"capacity " + std::to_string(rounded) + " is too large"};
  int64_t capacity = static_cast<int64_t>(rounded);
  if (multipleOf > 0)
    capacity += (multipleOf - capacity % multipleOf) % multipleOf;
  return capacity;
}

} // namespace vmoe::reference
