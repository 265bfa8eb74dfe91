//===- CapacityTest.cpp - The dialect's capacity rule ---------------------===//
//
// mlir::vmoe::computeCapacity folds vmoe.capacity and verifies capacity
// factors at compile time; it must give what the runtime computes per call
// and what the reference evaluator computes: the shared table of cases.
//
//===----------------------------------------------------------------------===//

#include "CapacityCases.h"
#include "vmoe/Dialect/IR/VmoeOps.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

namespace {

using ::vmoe::test::CapacityCase;
using ::vmoe::test::kCapacityCases;

TEST(Capacity, SharedTableOfCases) {
  for (const CapacityCase &c : kCapacityCases) {
    SCOPED_TRACE(c.what);
    std::optional<int64_t> capacity = mlir::vmoe::computeCapacity(
        static_cast<int64_t>(c.numTokens()), c.numExperts, c.capacityFactor,
        c.multipleOf, c.round);
    if (c.expected == 0) {
      EXPECT_FALSE(capacity.has_value()) << "got C = " << *capacity;
    } else {
      ASSERT_TRUE(capacity.has_value());
      EXPECT_EQ(*capacity, c.expected);
    }
  }
}

TEST(Capacity, DefaultsAreTopKRouting) {
  // multiple_of = 4 and ceil by default, as in vmoe's compute_capacity.
  EXPECT_EQ(mlir::vmoe::computeCapacity(1576 * 2, 32, 1.05), 104);
  EXPECT_EQ(mlir::vmoe::computeCapacity(650, 7, 1.12), 108);
}

} // namespace
