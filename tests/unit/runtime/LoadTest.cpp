//===- LoadTest.cpp - Many sessions over one module, in parallel ----------===//
//
// Threads each hold sessions on one shared module and run it thousands of
// times in total, with varying batches, inputs, capacity factors and BPR,
// recreating their sessions now and then. Every output must equal, bit for
// bit, what a single-threaded session computed for the same call, and the
// resident memory must not grow after a warm-up. Scaled up by
// VMOE_LOAD_TEST_RUNS (runs per thread, default 1000) and
// VMOE_LOAD_TEST_THREADS (default 4); scripts/sanitize.sh runs it under
// ThreadSanitizer.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||     \
    __has_feature(memory_sanitizer)
#define VMOE_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VMOE_SANITIZED 1
#endif

namespace vmoe {
namespace test {
namespace {

int envInt(const char *name, int fallback) {
  const char *text = getenv(name);
  if (!text || !*text)
    return fallback;
  char *end = nullptr;
  long value = strtol(text, &end, 10);
  if (*end || value < 1 || value > 100000000) {
    ADD_FAILURE() << name << " must be a positive integer, not '" << text
                  << "'";
    return fallback;
  }
  return int(value);
}

/// Resident set size in bytes (/proc/self/statm, second field).
uint64_t residentBytes() {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  unsigned long long size = 0, resident = 0;
  int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  return n == 2 ? resident * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

/// One call: which module, batch, inputs and per-call options. The add
/// module checks values through three dispatches with split grids; the echo
/// module returns the capacity and BPR each call resolved.
struct Call {
  bool echo = false;
  int64_t batch = 1;
  float seed = 0;
  vmoe_run_options_t options = {0, -1};
};

constexpr int kCalls = 24;

Call callAt(int i) {
  Call c;
  c.echo = i % 3 == 2;
  c.batch = c.echo ? 1 : 1 + i % kAddMaxBatch;
  c.seed = 0.37f * float(i) - 2.0f;
  static const double kFactors[] = {0, 0.25, 0.5, 1.0, 1.5, 2.0};
  c.options.capacity_factor = kFactors[i % 6];
  c.options.bpr = i % 5 % 3 - 1; // -1 (the session's), 0 or 1
  return c;
}

/// Buffers for one call, allocated once: the timed loop allocates nothing.
struct Buffers {
  std::vector<float> a, b, out;
  std::vector<int64_t> echoOut;
  std::vector<int64_t> shape;
  std::vector<int64_t> echoShape = {4};

  explicit Buffers(const Call &c) {
    size_t n = size_t(c.batch * kAddWidth);
    a.resize(n);
    b.resize(n);
    out.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      a[i] = c.seed + 0.5f * float(i % 13) - 0.125f * float(i % 5);
      b[i] = -c.seed * float(i % 3) + 0.0625f * float(i % 17);
    }
    echoOut.assign(4, 0);
    shape = {c.batch, kAddWidth};
  }
};

vmoe_status_t runCall(vmoe_session_t *session, const Call &c, Buffers &buf,
                      vmoe_message_t *message) {
  if (c.echo) {
    vmoe_tensor_t out = tensor(VMOE_DTYPE_I64, buf.echoShape,
                               buf.echoOut.data(), 4 * sizeof(int64_t));
    return vmoe_session_run(session, nullptr, 0, &out, 1, &c.options, message);
  }
  size_t bytes = buf.a.size() * sizeof(float);
  vmoe_tensor_t inputs[2] = {
      tensor(VMOE_DTYPE_F32, buf.shape, buf.a.data(), bytes),
      tensor(VMOE_DTYPE_F32, buf.shape, buf.b.data(), bytes)};
  vmoe_tensor_t out = tensor(VMOE_DTYPE_F32, buf.shape, buf.out.data(), bytes);
  vmoe_run_options_t options = c.options;
  options.capacity_factor = 0; // the add module has no MoE layer
  return vmoe_session_run(session, inputs, 2, &out, 1, &options, message);
}

bool sameBits(const Buffers &x, const Buffers &y, bool echo) {
  if (echo)
    return memcmp(x.echoOut.data(), y.echoOut.data(), 4 * sizeof(int64_t)) == 0;
  return memcmp(x.out.data(), y.out.data(), x.out.size() * sizeof(float)) == 0;
}

TEST(Load, ManySessionsInParallelMatchOneThreadAndMemoryStaysFlat) {
  const int runsPerThread = envInt("VMOE_LOAD_TEST_RUNS", 1000);
  const int threadCount = envInt("VMOE_LOAD_TEST_THREADS", 4);

  ModuleWriter addWriter, echoWriter;
  buildAddModule(addWriter, /*arenaConstant=*/true);
  buildEchoModule(echoWriter, 16, 2, 8, 1.0, 2.0, 8);
  Loaded add = loadBytes(serialize(addWriter));
  Loaded echo = loadBytes(serialize(echoWriter));
  ASSERT_EQ(add.status, VMOE_STATUS_OK) << add.message;
  ASSERT_EQ(echo.status, VMOE_STATUS_OK) << echo.message;

  // The reference: one session per module, one thread.
  std::vector<Buffers> reference;
  {
    SessionHolder addSession, echoSession;
    createSession(add.module, addSession, 1);
    createSession(echo.module, echoSession, 1);
    for (int i = 0; i < kCalls; ++i) {
      Call c = callAt(i);
      reference.emplace_back(c);
      vmoe_message_t message;
      ASSERT_EQ(runCall(c.echo ? echoSession.session : addSession.session, c,
                        reference.back(), &message),
                VMOE_STATUS_OK)
          << message.text;
    }
  }
  // The echo module resolves different capacities: the calls differ.
  EXPECT_NE(reference[2].echoOut[0], reference[5].echoOut[0]);
  EXPECT_EQ(reference[2].echoOut[3], 42);

  std::atomic<int> ready{0};
  std::atomic<bool> warm{false};
  std::atomic<uint64_t> runs{0}, mismatches{0}, failures{0};
  std::atomic<uint64_t> residentAfterWarmUp{0};
  const int warmUpRuns = runsPerThread / 10;

  auto worker = [&](int id) {
    std::vector<Buffers> buffers;
    for (int i = 0; i < kCalls; ++i)
      buffers.emplace_back(callAt(i));
    vmoe_session_t *sessions[2] = {nullptr, nullptr};
    vmoe_message_t message;
    auto open = [&] {
      for (int m = 0; m < 2; ++m) {
        vmoe_session_destroy(sessions[m]);
        sessions[m] = nullptr;
        vmoe_session_options_t options;
        vmoe_session_options_init(&options);
        options.thread_count = 1 + (id + m) % 3;
        if (vmoe_session_create(m ? echo.module : add.module, &options,
                                &sessions[m], &message) != VMOE_STATUS_OK)
          ++failures;
      }
    };
    open();
    for (int r = 0; r < runsPerThread; ++r) {
      if (r == warmUpRuns) {
        // Everyone waits until all threads are warm; then one measures.
        if (++ready == threadCount) {
          residentAfterWarmUp = residentBytes();
          warm = true;
        }
        while (!warm)
          std::this_thread::yield();
      }
      if (r % 250 == 249)
        open(); // sessions come and go while others run
      int i = (r * 7 + id * 5) % kCalls;
      const Call c = callAt(i);
      vmoe_session_t *session = sessions[c.echo ? 1 : 0];
      if (!session ||
          runCall(session, c, buffers[i], &message) != VMOE_STATUS_OK) {
        ++failures;
        continue;
      }
      if (!sameBits(buffers[i], reference[i], c.echo))
        ++mismatches;
      ++runs;
    }
    vmoe_session_destroy(sessions[0]);
    vmoe_session_destroy(sessions[1]);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < threadCount; ++t)
    threads.emplace_back(worker, t);
  for (std::thread &t : threads)
    t.join();
  uint64_t residentAtEnd = residentBytes();

  EXPECT_EQ(failures.load(), 0u);
  EXPECT_EQ(mismatches.load(), 0u);
  EXPECT_EQ(runs.load(), uint64_t(runsPerThread) * threadCount);
  ASSERT_GT(residentAfterWarmUp.load(), 0u);
  int64_t growth = int64_t(residentAtEnd) - int64_t(residentAfterWarmUp);
  printf("load: %llu runs on %d threads; resident %llu KiB after warm-up, "
         "%llu KiB at the end\n",
         (unsigned long long)runs.load(), threadCount,
         (unsigned long long)residentAfterWarmUp.load() / 1024,
         (unsigned long long)residentAtEnd / 1024);
#ifndef VMOE_SANITIZED
  // A leak of 1 KiB per run would show 4 MiB over the default 4000 runs;
  // the sessions' arenas and thread stacks are reused by the allocator.
  EXPECT_LT(growth, int64_t(1) << 20)
      << "resident memory grew by " << growth << " bytes after warm-up";
#else
  // Sanitizer quarantines and shadow memory grow on their own; LeakSanitizer
  // checks the leaks instead.
  (void)growth;
#endif
}

} // namespace
} // namespace test
} // namespace vmoe
