//===- CapacityTest.cpp - compute_capacity (reference section 6) ----------===//

#include "CapacityCases.h"
#include "TestUtil.h"

using namespace vmoe::reference;

namespace {

int64_t capacityOrDie(int64_t numTokens, int64_t numExperts, double cf,
                      int64_t multipleOf = 4,
                      CapacityRounding rounding = CapacityRounding::Ceil) {
  Result<int64_t> result =
      computeCapacity(numTokens, numExperts, cf, multipleOf, rounding);
  EXPECT_TRUE(result.ok()) << result.error();
  return result.ok() ? *result : -1;
}

struct TableRow {
  const char *model;
  int64_t tokensPerImage;
  // E=32 cf=1.05, E=32 cf=0.5, E=8 cf=1.05, E=8 cf=1.5.
  int64_t expected[4];
};

// The table of section 6: group = 8 images, K = 2, C = capacity(S*K, E, cf).
TEST(CapacityTest, PaperTable) {
  const TableRow rows[] = {
      {"S/32, B/32, L/32 @224", 50, {28, 16, 108, 152}},
      {"B/16, L/16 @224", 197, {104, 52, 416, 592}},
      {"H/14, 15B @224", 257, {136, 68, 540, 772}},
      {"S/32 @384", 145, {80, 40, 308, 436}},
      {"B/16 @384", 577, {304, 148, 1212, 1732}},
  };
  const struct {
    int64_t experts;
    double cf;
  } columns[] = {{32, 1.05}, {32, 0.5}, {8, 1.05}, {8, 1.5}};
  for (const TableRow &row : rows) {
    int64_t groupSize = 8 * row.tokensPerImage;
    for (int col = 0; col < 4; ++col)
      EXPECT_EQ(
          capacityOrDie(groupSize * 2, columns[col].experts, columns[col].cf),
          row.expected[col])
          << row.model << ", E=" << columns[col].experts
          << ", cf=" << columns[col].cf;
  }
}

TEST(CapacityTest, SharedTableOfCases) {
  for (const vmoe::test::CapacityCase &c : vmoe::test::kCapacityCases) {
    SCOPED_TRACE(c.what);
    Result<int64_t> result = computeCapacity(
        static_cast<int64_t>(c.numTokens()), c.numExperts, c.capacityFactor,
        c.multipleOf,
        c.round ? CapacityRounding::Round : CapacityRounding::Ceil);
    if (c.expected == 0) {
      EXPECT_FALSE(result.ok()) << "got C = " << *result;
    } else {
      ASSERT_TRUE(result.ok()) << result.error();
      EXPECT_EQ(*result, c.expected);
    }
  }
}

TEST(CapacityTest, ReleasedS32EvalOverrideHasNoDrops) {
  // E=8, K=2, cf=4.0, S=400: C = 400 = S.
  EXPECT_EQ(capacityOrDie(400 * 2, 8, 4.0), 400);
}

TEST(CapacityTest, CeilPitfallHairAboveAnInteger) {
  // In double, (650 * 1.12) / 7 = 104.00000000000001, which ceils to 105
  // and then rounds up to 108; 650 * (1.12 / 7) would give exactly 104.
  double value = 650 * 1.12 / 7;
  ASSERT_GT(value, 104.0);
  ASSERT_EQ(650 * (1.12 / 7), 104.0);
  EXPECT_EQ(capacityOrDie(650, 7, 1.12), 108);
  EXPECT_EQ(capacityOrDie(650, 7, 1.12, /*multipleOf=*/0), 105);
  EXPECT_EQ(capacityOrDie(650, 7, 1.12, /*multipleOf=*/1), 105);
  // Another one: 50 * 1.1 = 55.00000000000001.
  EXPECT_EQ(capacityOrDie(50, 1, 1.1, /*multipleOf=*/0), 56);
  // 'round' is immune: it rounds the hair away.
  EXPECT_EQ(capacityOrDie(650, 7, 1.12, 0, CapacityRounding::Round), 104);
}

TEST(CapacityTest, RoundIsHalfToEven) {
  // v = 2.5 -> 2 (std::round would give 3); v = 3.5 -> 4; v = 1.5 -> 2.
  EXPECT_EQ(capacityOrDie(10, 4, 1.0, 1, CapacityRounding::Round), 2);
  EXPECT_EQ(capacityOrDie(14, 4, 1.0, 1, CapacityRounding::Round), 4);
  EXPECT_EQ(capacityOrDie(6, 4, 1.0, 1, CapacityRounding::Round), 2);
  EXPECT_EQ(capacityOrDie(10, 4, 1.0, 0, CapacityRounding::Round), 2);
  // With the default multiple of 4, 2 becomes 4.
  EXPECT_EQ(capacityOrDie(10, 4, 1.0, 4, CapacityRounding::Round), 4);
  // Ceil on the same input: 3, then 4.
  EXPECT_EQ(capacityOrDie(10, 4, 1.0, 1), 3);
}

TEST(CapacityTest, MultipleOfRoundsUp) {
  EXPECT_EQ(capacityOrDie(8, 2, 1.0, 4), 4);  // already a multiple
  EXPECT_EQ(capacityOrDie(10, 2, 1.0, 4), 8); // 5 -> 8
  EXPECT_EQ(capacityOrDie(10, 2, 1.0, 3), 6); // 5 -> 6
  EXPECT_EQ(capacityOrDie(10, 2, 1.0, 0), 5); // no rounding
  EXPECT_EQ(capacityOrDie(10, 2, 1.0, -1), 5);
  // A tiny positive value ceils to 1, then 4.
  EXPECT_EQ(capacityOrDie(1, 32, 0.01), 4);
}

TEST(CapacityTest, BelowOneIsAnError) {
  // ceil(0) = 0.
  Result<int64_t> zeroFactor = computeCapacity(400, 8, 0.0);
  EXPECT_FALSE(zeroFactor.ok());
  EXPECT_NE(zeroFactor.error().find("must be greater than or equal to 1"),
            std::string::npos)
      << zeroFactor.error();
  // round(0.25) = 0.
  EXPECT_FALSE(computeCapacity(1, 4, 1.0, 4, CapacityRounding::Round).ok());
  // round(0.5) = 0 (half to even), where std::round would give 1.
  EXPECT_FALSE(computeCapacity(2, 4, 1.0, 4, CapacityRounding::Round).ok());
  // round(1.5) = 2 is fine.
  EXPECT_EQ(capacityOrDie(6, 4, 1.0, 4, CapacityRounding::Round), 4);
  // Negative factors and no experts are errors too.
  EXPECT_FALSE(computeCapacity(400, 8, -1.0).ok());
  EXPECT_FALSE(computeCapacity(400, 0, 1.0).ok());
}

TEST(CapacityTest, ResolveCapacityFromConfig) {
  MoeConfig config;
  config.groupSize = 400;
  config.numSelectedExperts = 2;
  config.capacityFactor = 1.05;
  EXPECT_EQ(*resolveCapacity(config, 32), 28); // S*K tokens
  config.routing = RoutingKind::ExpertChoice;
  // Expert choice uses S, not S*K: ceil(400*1.05/32) = 14 -> 16.
  EXPECT_EQ(*resolveCapacity(config, 32), 16);
  // An explicit capacity is used as is (no multiple-of rounding).
  config.capacityFactor.reset();
  config.capacity = 7;
  EXPECT_EQ(*resolveCapacity(config, 32), 7);
  // Both or neither set: error, as upstream.
  config.capacityFactor = 1.0;
  EXPECT_FALSE(resolveCapacity(config, 32).ok());
  config.capacity.reset();
  config.capacityFactor.reset();
  EXPECT_FALSE(resolveCapacity(config, 32).ok());
  config.capacity = 0;
  EXPECT_FALSE(resolveCapacity(config, 32).ok());
}

} // namespace
