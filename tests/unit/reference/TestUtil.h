//===- TestUtil.h - Helpers for the reference evaluator tests ---*- C++ -*-===//

#ifndef VMOE_TESTS_UNIT_REFERENCE_TESTUTIL_H
#define VMOE_TESTS_UNIT_REFERENCE_TESTUTIL_H

#include "reference/Reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

namespace vmoe::reference::test {

/// A tensor with elements uniform in [low, high), from a fixed seed.
inline Tensor randomTensor(std::vector<int64_t> shape, std::mt19937 &rng,
                           float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> dist(low, high);
  Tensor t(std::move(shape));
  for (float &v : t.data)
    v = dist(rng);
  return t;
}

/// Element-wise |a - b| <= atol + rtol * |b|, reporting the first mismatch.
inline ::testing::AssertionResult allClose(const Tensor &a, const Tensor &b,
                                           double atol, double rtol = 0.0) {
  if (a.shape != b.shape)
    return ::testing::AssertionFailure() << "shapes " << shapeToString(a.shape)
                                         << " vs " << shapeToString(b.shape);
  for (int64_t i = 0; i < a.numElements(); ++i) {
    double x = a.data[i], y = b.data[i];
    if (!(std::fabs(x - y) <= atol + rtol * std::fabs(y)))
      return ::testing::AssertionFailure()
             << "element " << i << ": " << x << " vs " << y << " (atol " << atol
             << ", rtol " << rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

/// Bitwise equality of float tensors (distinguishes -0.0 and NaNs).
inline ::testing::AssertionResult bitwiseEqual(const Tensor &a,
                                               const Tensor &b) {
  if (a.shape != b.shape)
    return ::testing::AssertionFailure() << "shapes " << shapeToString(a.shape)
                                         << " vs " << shapeToString(b.shape);
  for (int64_t i = 0; i < a.numElements(); ++i)
    if (std::memcmp(&a.data[i], &b.data[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure()
             << "element " << i << ": " << a.data[i] << " vs " << b.data[i];
  return ::testing::AssertionSuccess();
}

inline float bitsToFloat(uint32_t bits) {
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}

inline uint32_t floatToBits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits;
}

} // namespace vmoe::reference::test

#endif // VMOE_TESTS_UNIT_REFERENCE_TESTUTIL_H
