//===- Int8PackingTest.cpp - int8 weight panels, scales, column sums ------===//
//
// The int8 layouts of vmoe/writer/WeightPacking.h against values worked out
// by hand from the #24 numerics: scale = max |w| / 127 per output column
// (1 for an all-zero column), q = clamp(nearbyint(w / scale)), ties to
// even; panels in k pairs or quads; the scales and column sums laid out as
// a bias.
//
//===----------------------------------------------------------------------===//

#include "vmoe/writer/WeightPacking.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace vmoe {
namespace test {
namespace {

TEST(Int8Packing, QuantizesEachColumnAsSpecified) {
  // One column: max |w| = 2.54, so scale = 0.02 (as f32) and w / scale
  // rounds to nearest even: 0.01 / 0.02 = 0.5 -> 0, 0.03 / 0.02 = 1.5 -> 2.
  std::vector<float> column = {2.54f, -1.27f, 0.01f, 0.03f, -2.54f};
  std::vector<int8_t> q(column.size());
  float scale = writer::quantizeInt8Column(column.data(), 5, 1, q.data());
  EXPECT_EQ(scale, 2.54f / 127.0f);
  EXPECT_EQ(q, (std::vector<int8_t>{127, -64, 0, 2, -127}));
  // An all-zero column: scale 1, every q 0; strided reads.
  std::vector<float> zeros = {0.0f, 9.0f, -0.0f, 9.0f};
  EXPECT_EQ(writer::quantizeInt8Column(zeros.data(), 2, 2, q.data()), 1.0f);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 0);
}

TEST(Int8Packing, PanelsScalesAndColumnSumsFollowTheirDefinition) {
  // Two sources side by side, (K = 4, N = 2 + 1), nr = 2: two panels.
  // Column j of source a holds (j + 1) * {127, -127, 63.5, 1}: q = {127,
  // -127, 64 (63.5 ties to even), 1}, scale j + 1; source b's column is
  // {0, 0, 0, 0}.
  std::vector<float> a(8), b(4, 0.0f);
  const float base[4] = {127.0f, -127.0f, 63.5f, 1.0f};
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 2; ++j)
      a[k * 2 + j] = (j + 1) * base[k];
  writer::PackSpec spec;
  spec.layout = writer::PackLayout::Panels;
  spec.k = 4;
  spec.nr = 2;
  spec.widths = {2, 1};
  spec.int8 = true;
  spec.kQuads = true;
  std::string error;
  ASSERT_TRUE(writer::checkPackSpec(spec, &error)) << error;
  EXPECT_EQ(writer::packedBytes(spec), 2u * 4 * 2);
  std::vector<uint8_t> out;
  writer::packWeights(spec, {a.data(), b.data()}, out);
  std::vector<int8_t> got(out.begin(), out.end());
  // Quads: (panel, k / 4, 4 l + k % 4); the padded column stays zero.
  EXPECT_EQ(got, (std::vector<int8_t>{127, -127, 64, 1, 127, -127, 64, 1, //
                                      0, 0, 0, 0, 0, 0, 0, 0}));
  spec.kQuads = false;
  spec.kPairs = true;
  writer::packWeights(spec, {a.data(), b.data()}, out);
  got.assign(out.begin(), out.end());
  // Pairs: (panel, k / 2, 2 l + k % 2).
  EXPECT_EQ(got, (std::vector<int8_t>{127, -127, 127, -127, 64, 1, 64, 1, //
                                      0, 0, 0, 0, 0, 0, 0, 0}));

  writer::PackSpec scales = spec;
  scales.layout = writer::PackLayout::Int8Scales;
  scales.int8 = scales.kPairs = false;
  ASSERT_TRUE(writer::checkPackSpec(scales, &error)) << error;
  writer::packWeights(scales, {a.data(), b.data()}, out);
  ASSERT_EQ(out.size(), 4u * 4);
  std::vector<float> s(4);
  std::memcpy(s.data(), out.data(), out.size());
  EXPECT_EQ(s, (std::vector<float>{1.0f, 2.0f, 1.0f, 0.0f}));

  writer::PackSpec sums = scales;
  sums.layout = writer::PackLayout::Int8ColSums;
  writer::packWeights(sums, {a.data(), b.data()}, out);
  std::vector<int32_t> c(4);
  std::memcpy(c.data(), out.data(), out.size());
  EXPECT_EQ(c, (std::vector<int32_t>{65, 65, 0, 0}));
}

TEST(Int8Packing, RejectsInconsistentSpecs) {
  writer::PackSpec spec;
  spec.layout = writer::PackLayout::Panels;
  spec.k = 6;
  spec.nr = 4;
  spec.widths = {4};
  spec.int8 = true;
  spec.kQuads = true;
  std::string error;
  EXPECT_FALSE(writer::checkPackSpec(spec, &error));
  EXPECT_EQ(error, "bad weight packing: int8 panels need k pairs or k quads "
                   "and a K that is a multiple of the group");
  spec.k = 8;
  spec.kPairs = true; // both groups
  EXPECT_FALSE(writer::checkPackSpec(spec, &error));
  spec.int8 = false;
  spec.kPairs = false; // quads of f32
  EXPECT_FALSE(writer::checkPackSpec(spec, &error));
  EXPECT_EQ(error, "bad weight packing: k quads are int8 panels");
}

} // namespace
} // namespace test
} // namespace vmoe
