//===- CapacityCases.h - Capacity cases for each implementation -*- C++ -*-===//
//
// vmoe's expert-capacity rule (docs/vmoe-reference.md section 6):
//
//   v = num_tokens * capacity_factor / num_experts  (double, left to right)
//   C = ceil(v), or Python's round(v) (half to even); refused when C < 1
//   C rounded up to a multiple of multiple_of
//
// Top-K routing calls it with num_tokens = S*K and multiple_of = 4, i.e.
// C = roundup4(ceil(S*K*cf/E)). The rule is written three times: in the
// dialect (mlir::vmoe::computeCapacity, used by the compiler), in the runtime
// (computeCapacityRule per call, and vmoe_compute_capacity, top-K routing's
// form: ceil, multiple of 4) and in the reference evaluator. Each one is
// tested against this table: tests/unit/dialects/CapacityTest.cpp,
// tests/unit/runtime/CapacityTest.cpp, tests/unit/reference/CapacityTest.cpp.
//
// Plain C++17, no dependency: every configuration can include it.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_TESTS_SUPPORT_CAPACITYCASES_H
#define VMOE_TESTS_SUPPORT_CAPACITYCASES_H

#include <cstdint>
#include <limits>

namespace vmoe {
namespace test {

struct CapacityCase {
  /// What the case pins down.
  const char *what;
  /// Group size S, experts per token K (num_tokens = S*K; 1 for expert
  /// choice and Soft MoE, where num_tokens = S), experts E.
  uint64_t groupSize;
  uint32_t k;
  uint32_t numExperts;
  double capacityFactor;
  /// The rule's options: multiple_of (> 0) and round instead of ceil.
  int64_t multipleOf;
  bool round;
  /// C, or 0 when the rule refuses the inputs.
  int64_t expected;

  uint64_t numTokens() const { return groupSize * k; }
  /// The form the runtime implements (top-K routing's).
  bool topKForm() const { return multipleOf == 4 && !round; }
};

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kSmallestDouble = std::numeric_limits<double>::denorm_min();

// clang-format off
inline constexpr CapacityCase kCapacityCases[] = {
    // Section 6's table: group = 8 images, K = 2, S = 8*T.
    {"S/32 @224, E=32, cf=1.05", 400, 2, 32, 1.05, 4, false, 28},
    {"S/32 @224, E=32, cf=0.5", 400, 2, 32, 0.5, 4, false, 16},
    {"S/32 @224, E=8, cf=1.05", 400, 2, 8, 1.05, 4, false, 108},
    {"S/32 @224, E=8, cf=1.5", 400, 2, 8, 1.5, 4, false, 152},
    {"B/16 @224, E=32, cf=1.05", 1576, 2, 32, 1.05, 4, false, 104},
    {"B/16 @224, E=32, cf=0.5", 1576, 2, 32, 0.5, 4, false, 52},
    {"B/16 @224, E=8, cf=1.05", 1576, 2, 8, 1.05, 4, false, 416},
    {"B/16 @224, E=8, cf=1.5", 1576, 2, 8, 1.5, 4, false, 592},
    {"H/14 @224, E=32, cf=1.05", 2056, 2, 32, 1.05, 4, false, 136},
    {"H/14 @224, E=32, cf=0.5", 2056, 2, 32, 0.5, 4, false, 68},
    {"H/14 @224, E=8, cf=1.05", 2056, 2, 8, 1.05, 4, false, 540},
    {"H/14 @224, E=8, cf=1.5", 2056, 2, 8, 1.5, 4, false, 772},
    {"S/32 @384, E=32, cf=1.05", 1160, 2, 32, 1.05, 4, false, 80},
    {"S/32 @384, E=32, cf=0.5", 1160, 2, 32, 0.5, 4, false, 40},
    {"S/32 @384, E=8, cf=1.05", 1160, 2, 8, 1.05, 4, false, 308},
    {"S/32 @384, E=8, cf=1.5", 1160, 2, 8, 1.5, 4, false, 436},
    {"B/16 @384, E=32, cf=1.05", 4616, 2, 32, 1.05, 4, false, 304},
    {"B/16 @384, E=32, cf=0.5", 4616, 2, 32, 0.5, 4, false, 148},
    {"B/16 @384, E=8, cf=1.05", 4616, 2, 8, 1.05, 4, false, 1212},
    {"B/16 @384, E=8, cf=1.5", 4616, 2, 8, 1.5, 4, false, 1732},
    // The released S/32 eval override: C = S, no drops possible.
    {"S/32 eval override cf=4", 400, 2, 8, 4.0, 4, false, 400},
    // Double, left to right: a hair above an integer ceils up (and can cost
    // 4 slots after the multiple of 4); a hair below ceils to it.
    {"3200*2*0.07/8 = 56.00000000000001", 3200, 2, 8, 0.07, 4, false, 60},
    {"3200*0.07/2 = 112.00000000000001", 3200, 1, 2, 0.07, 4, false, 116},
    {"650*1.12/7 = 104.00000000000001", 650, 1, 7, 1.12, 4, false, 108},
    {"650*1.12/7, multiple of 1", 650, 1, 7, 1.12, 1, false, 105},
    {"650*1.12/7 rounds to 104", 650, 1, 7, 1.12, 1, true, 104},
    {"50*1.1 = 55.00000000000001", 50, 1, 1, 1.1, 1, false, 56},
    {"100*0.29 = 28.999999999999996", 100, 1, 1, 0.29, 4, false, 32},
    {"100*0.29, multiple of 1", 100, 1, 1, 0.29, 1, false, 29},
    {"an exact integer stays: 591", 1576, 2, 8, 1.5, 1, false, 591},
    // Python's round is half to even.
    {"round(2.5) = 2", 10, 1, 4, 1.0, 1, true, 2},
    {"round(3.5) = 4", 14, 1, 4, 1.0, 1, true, 4},
    {"round(1.5) = 2", 6, 1, 4, 1.0, 1, true, 2},
    {"round(2.5) = 2, then 4", 10, 1, 4, 1.0, 4, true, 4},
    {"ceil(2.5) = 3", 10, 1, 4, 1.0, 1, false, 3},
    // The multiple rounds up.
    {"4 is a multiple of 4", 8, 1, 2, 1.0, 4, false, 4},
    {"5 -> 8", 10, 1, 2, 1.0, 4, false, 8},
    {"5 -> 6 (multiple of 3)", 10, 1, 2, 1.0, 3, false, 6},
    // Minimums: a tiny positive v ceils to 1, then the multiple.
    {"1*0.01/32 -> 1 -> 4", 1, 1, 32, 0.01, 4, false, 4},
    {"1*0.01/32 -> 1", 1, 1, 32, 0.01, 1, false, 1},
    {"cf = 1e-12", 400, 2, 8, 1e-12, 4, false, 4},
    {"cf = the smallest double", 400, 2, 8, kSmallestDouble, 4, false, 4},
    {"one token, one expert", 1, 1, 1, 1.0, 4, false, 4},
    // Refused: C < 1 or inputs the rule cannot take.
    {"cf = 0", 400, 2, 8, 0.0, 4, false, 0},
    {"cf < 0", 400, 2, 8, -1.0, 4, false, 0},
    {"cf = NaN", 400, 2, 8, kNaN, 4, false, 0},
    {"cf = infinity", 400, 2, 8, kInfinity, 4, false, 0},
    {"no experts", 400, 2, 0, 1.0, 4, false, 0},
    {"no tokens", 0, 2, 8, 1.0, 4, false, 0},
    {"k = 0", 400, 0, 8, 1.0, 4, false, 0},
    {"v underflows to 0", 1, 1, 1000, kSmallestDouble, 4, false, 0},
    {"round(0.25) = 0", 1, 1, 4, 1.0, 4, true, 0},
    {"round(0.5) = 0 (half to even)", 2, 1, 4, 1.0, 4, true, 0},
};
// clang-format on

} // namespace test
} // namespace vmoe

#endif // VMOE_TESTS_SUPPORT_CAPACITYCASES_H
