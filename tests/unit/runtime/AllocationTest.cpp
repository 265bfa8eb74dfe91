//===- AllocationTest.cpp - A run allocates nothing -----------------------===//
//
// Replaces the global operator new for this test binary to count C++
// allocations (the runtime allocates its arena and scratch with
// posix_memalign, once, at session creation; everything else it owns is
// sized then too). After the first call, a run must not allocate.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include <atomic>
#include <new>

// ThreadSanitizer's runtime defines operator new and delete itself (strong
// symbols): the counting replacement cannot link there, and the test skips.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMOE_NO_NEW_REPLACEMENT 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define VMOE_NO_NEW_REPLACEMENT 1
#endif

namespace {
std::atomic<uint64_t> allocations{0};
} // namespace

#ifndef VMOE_NO_NEW_REPLACEMENT

void *operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void *p = malloc(size ? size : 1))
    return p;
  throw std::bad_alloc();
}
void *operator new[](size_t size) { return operator new(size); }
// The runtime allocates with new (std::nothrow): count and pair those too.
void *operator new(size_t size, const std::nothrow_t &) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return malloc(size ? size : 1);
}
void *operator new[](size_t size, const std::nothrow_t &tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void *p, const std::nothrow_t &) noexcept { free(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { free(p); }
void operator delete(void *p) noexcept { free(p); }
void operator delete[](void *p) noexcept { free(p); }
void operator delete(void *p, size_t) noexcept { free(p); }
void operator delete[](void *p, size_t) noexcept { free(p); }
#endif

namespace vmoe {
namespace test {
namespace {

TEST(Allocation, RunAllocatesNothingAfterTheFirstCall) {
#ifdef VMOE_NO_NEW_REPLACEMENT
  GTEST_SKIP() << "operator new cannot be replaced under ThreadSanitizer";
#endif
  ModuleWriter w;
  buildAddModule(w, /*arenaConstant=*/true);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 4);
  size_t n = kAddMaxBatch * kAddWidth;
  std::vector<float> a(n, 1.0f), b(n, 2.0f), out(n);
  std::vector<int64_t> full = {kAddMaxBatch, kAddWidth}, half = {2, kAddWidth};
  vmoe_tensor_t inputs[2] = {tensor(VMOE_DTYPE_F32, full, a.data(), n * 4),
                             tensor(VMOE_DTYPE_F32, full, b.data(), n * 4)};
  vmoe_tensor_t output = tensor(VMOE_DTYPE_F32, full, out.data(), n * 4);
  vmoe_message_t message;
  ASSERT_EQ(
      vmoe_session_run(s.session, inputs, 2, &output, 1, nullptr, &message),
      VMOE_STATUS_OK)
      << message.text;
  uint64_t before = allocations.load();
  ASSERT_GT(before, 0u) << "the counting operator new is not in use";
  for (int i = 0; i < 50; ++i) {
    // Full and partial batches, and a refused call, all without allocating.
    const std::vector<int64_t> &shape = i % 2 ? half : full;
    inputs[0].shape = inputs[1].shape = output.shape = shape.data();
    ASSERT_EQ(
        vmoe_session_run(s.session, inputs, 2, &output, 1, nullptr, &message),
        VMOE_STATUS_OK)
        << message.text;
  }
  inputs[0].dtype = VMOE_DTYPE_I32;
  EXPECT_EQ(
      vmoe_session_run(s.session, inputs, 2, &output, 1, nullptr, &message),
      VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(allocations.load(), before);
}

} // namespace
} // namespace test
} // namespace vmoe
