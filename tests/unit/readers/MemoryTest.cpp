//===- MemoryTest.cpp - the memory a process may still allocate -----------===//

#include "vmoe/readers/Memory.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

namespace vmoe::readers {
namespace {

TEST(Memory, ImpossibleNeedsAreRefusedWithBothNumbers) {
  std::string error;
  EXPECT_TRUE(checkMemoryFor(1000, "reading x", &error)) << error;
  EXPECT_FALSE(checkMemoryFor(UINT64_MAX, "compiling 'huge'", &error));
  EXPECT_NE(error.find("compiling 'huge' needs about more than 18 EB of "
                       "memory, more than the "),
            std::string::npos)
      << error;
  EXPECT_FALSE(checkMemoryFor(uint64_t(1) << 62, "compiling 'big'", &error));
  EXPECT_NE(error.find("needs about 4611686018.4 GB"), std::string::npos)
      << error;
}

TEST(Memory, AddressSpaceLimitIsTheBound) {
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_AS, &saved), 0);
  // The soft limit only: it can be raised back up to the hard one.
  uint64_t huge = uint64_t(1) << 46; // 64 TiB, above any VmSize here
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < huge)
    GTEST_SKIP() << "a hard RLIMIT_AS below 64 TiB";
  struct rlimit lowered = saved;
  lowered.rlim_cur = huge;
  ASSERT_EQ(setrlimit(RLIMIT_AS, &lowered), 0);
  std::string limitedBy;
  uint64_t available = availableMemory(&limitedBy);
  std::string error;
  bool refused = !checkMemoryFor(huge, "compiling 'm'", &error);
  ASSERT_EQ(setrlimit(RLIMIT_AS, &saved), 0);
  EXPECT_LT(available, huge);
  EXPECT_TRUE(refused);
  // MemAvailable is smaller still on any real machine; the limit is named
  // when it decides.
  if (limitedBy.find("address-space") != std::string::npos)
    EXPECT_NE(error.find("the address-space limit (ulimit -v) of 70368.7 GB"),
              std::string::npos)
        << error;
}

} // namespace
} // namespace vmoe::readers
