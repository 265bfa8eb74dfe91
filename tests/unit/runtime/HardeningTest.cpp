//===- HardeningTest.cpp - Many modules, busy sessions, forged bindings ---===//
//
// Cases a hostile or careless caller hits: different modules alive in one
// process (each must run its own code), one session called from two threads
// at once, and metadata forged through the writer that would make kernels
// fault (misaligned binding offsets) or write into constants.
//
//===----------------------------------------------------------------------===//

#include "CpuLoader.h"
#include "TestSupport.h"

#include <dlfcn.h>
#include <thread>

namespace vmoe {
namespace test {
namespace {

// ---- many modules in one process -------------------------------------------

/// Calls vmoe_test_add_f32 of `handle` on a = 3, b = 1 (one workgroup).
float callAdd(void *handle) {
  auto fn = reinterpret_cast<vmoe_kernel_fn_v0_t>(
      dlsym(handle, "vmoe_test_add_f32"));
  if (!fn)
    return -1;
  float a = 3, b = 1, out = 0;
  void *bindings[3] = {&a, &b, &out};
  uint64_t lengths[3] = {4, 4, 4};
  int64_t tile = 1;
  vmoe_dispatch_state_v0_t d = {bindings, lengths, 3, 1, &tile, {1, 1, 1}, 0};
  vmoe_workgroup_state_v0_t w = {{0, 0, 0}, 0, 1, 0, nullptr, 0};
  return fn(&d, &w) == 0 ? out : -1;
}

void expectTwoObjectsAtOnce(cpu::LoadMethod method) {
  // Loaded one after the other, both kept: the second must be its own
  // object, not the first one found again under a reused name.
  void *first = nullptr, *second = nullptr;
  vmoe_message_t message;
  const std::vector<uint8_t> &a = testKernelsSo();
  const std::vector<uint8_t> &b = testKernelsVariantSo();
  ASSERT_EQ(cpu::loadSharedObject(0, a.data(), a.size(), method, &first,
                                  &message),
            VMOE_STATUS_OK)
      << message.text;
  ASSERT_EQ(cpu::loadSharedObject(1, b.data(), b.size(), method, &second,
                                  &message),
            VMOE_STATUS_OK)
      << message.text;
  EXPECT_NE(first, second);
  EXPECT_EQ(callAdd(first), 4.0f);  // a + b
  EXPECT_EQ(callAdd(second), 2.0f); // a - b: the variant's own code
  // And after the first is gone, a third load is again its own object.
  dlclose(first);
  void *third = nullptr;
  ASSERT_EQ(cpu::loadSharedObject(2, a.data(), a.size(), method, &third,
                                  &message),
            VMOE_STATUS_OK)
      << message.text;
  EXPECT_EQ(callAdd(third), 4.0f);
  EXPECT_EQ(callAdd(second), 2.0f);
  dlclose(third);
  dlclose(second);
}

TEST(ManyModules, TwoObjectsLoadedByMemFdRunTheirOwnCode) {
#if defined(__linux__)
  expectTwoObjectsAtOnce(cpu::LoadMethod::MemFd);
#else
  GTEST_SKIP() << "memfd is Linux-only";
#endif
}

TEST(ManyModules, TwoObjectsLoadedByTemporaryFileRunTheirOwnCode) {
  expectTwoObjectsAtOnce(cpu::LoadMethod::TempFile);
}

std::vector<float> pattern(size_t n, float seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = seed + 0.5f * static_cast<float>(i % 11) - 0.25f * (i % 3);
  return v;
}

/// Runs the add module at the maximum batch; `subtracts`: the module embeds
/// the variant kernels, so out = (a - b) * 2.5 - c.
void expectAddRun(vmoe_session_t *session, bool subtracts, float seed) {
  size_t n = kAddMaxBatch * kAddWidth;
  std::vector<float> a = pattern(n, seed), b = pattern(n, 1 - seed);
  std::vector<float> out(n, -99.0f);
  std::vector<int64_t> shape = {kAddMaxBatch, kAddWidth};
  vmoe_tensor_t inputs[2] = {tensor(VMOE_DTYPE_F32, shape, a.data(), n * 4),
                             tensor(VMOE_DTYPE_F32, shape, b.data(), n * 4)};
  vmoe_tensor_t output = tensor(VMOE_DTYPE_F32, shape, out.data(), n * 4);
  vmoe_message_t message;
  ASSERT_EQ(vmoe_session_run(session, inputs, 2, &output, 1, nullptr, &message),
            VMOE_STATUS_OK)
      << message.text;
  std::vector<float> c = addConstantValues();
  for (size_t i = 0; i < n; ++i) {
    float want = subtracts ? (a[i] - b[i]) * 2.5f - c[i % kAddWidth]
                           : (a[i] + b[i]) * 2.5f + c[i % kAddWidth];
    ASSERT_FLOAT_EQ(out[i], want) << "at " << i << (subtracts ? " (B)" : "");
  }
}

TEST(ManyModules, DifferentModulesRunInterleaved) {
  ModuleWriter wa, wb;
  buildAddModule(wa);
  buildAddModule(wb, false, 0, &testKernelsVariantSo());
  Loaded a = loadBytes(serialize(wa));
  Loaded b = loadBytes(serialize(wb));
  ASSERT_EQ(a.status, VMOE_STATUS_OK) << a.message;
  ASSERT_EQ(b.status, VMOE_STATUS_OK) << b.message;
  SessionHolder sa, sb;
  createSession(a.module, sa, 2);
  createSession(b.module, sb, 2);
  for (int i = 0; i < 3; ++i) {
    expectAddRun(sb.session, true, 0.5f * i);
    expectAddRun(sa.session, false, 0.5f * i);
  }
  // A module loaded after another one was released runs its own code too.
  SessionHolder sc;
  {
    ModuleWriter wc;
    buildAddModule(wc);
    Loaded c = loadBytes(serialize(wc));
    ASSERT_EQ(c.status, VMOE_STATUS_OK) << c.message;
    createSession(c.module, sc, 1);
  }
  expectAddRun(sc.session, false, 2.0f);
  expectAddRun(sb.session, true, 2.0f);
}

// ---- one session, two callers ----------------------------------------------

TEST(BusySession, SecondConcurrentCallerIsRefused) {
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.addOutput({"gate", fb::DType::I32, {2}, -1});
  w.setArena(0);
  KernelDesc wait;
  wait.name = "wait";
  wait.executable = exe;
  wait.entry = "vmoe_test_wait_gate";
  wait.workgroupCount = {1, 1, 1};
  wait.bindingCount = 1;
  wait.writtenBindings = {true};
  w.addDispatch({w.addKernel(wait), {BindingDesc::output(0, 0, 8)}, {}});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);

  int32_t gate[2] = {0, 0};
  std::vector<int64_t> shape = {2};
  vmoe_tensor_t output = tensor(VMOE_DTYPE_I32, shape, gate, sizeof(gate));
  vmoe_status_t firstStatus = VMOE_STATUS_INTERNAL;
  std::thread first([&] {
    vmoe_message_t message;
    firstStatus =
        vmoe_session_run(s.session, nullptr, 0, &output, 1, nullptr, &message);
  });
  while (!__atomic_load_n(&gate[1], __ATOMIC_ACQUIRE))
    std::this_thread::yield(); // the first call is inside its kernel now
  int32_t other[2] = {1, 0};
  vmoe_tensor_t otherOutput =
      tensor(VMOE_DTYPE_I32, shape, other, sizeof(other));
  vmoe_message_t message;
  vmoe_status_t second = vmoe_session_run(s.session, nullptr, 0, &otherOutput,
                                          1, nullptr, &message);
  __atomic_store_n(&gate[0], 1, __ATOMIC_RELEASE);
  first.join();
  EXPECT_EQ(second, VMOE_STATUS_FAILED_PRECONDITION);
  EXPECT_NE(std::string(message.text).find("one caller at a time"),
            std::string::npos)
      << message.text;
  EXPECT_EQ(other[1], 0); // the refused call ran nothing
  EXPECT_EQ(firstStatus, VMOE_STATUS_OK);
  // Once the first call is over, the session takes calls again.
  EXPECT_EQ(vmoe_session_run(s.session, nullptr, 0, &otherOutput, 1, nullptr,
                             &message),
            VMOE_STATUS_OK)
      << message.text;
  EXPECT_EQ(other[1], 1);
}

TEST(BusySession, ManyThreadsOnOneSessionNeverCorruptIt) {
  // Eight threads call one session as fast as they can: every call either
  // runs alone and is right, or is refused.
  ModuleWriter w;
  buildAddModule(w);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 2);
  std::atomic<int> ran{0}, refused{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      size_t n = kAddMaxBatch * kAddWidth;
      std::vector<float> a = pattern(n, float(t)), b = pattern(n, 1.0f);
      std::vector<float> want = expectedAdd(a, b);
      std::vector<int64_t> shape = {kAddMaxBatch, kAddWidth};
      vmoe_tensor_t inputs[2] = {
          tensor(VMOE_DTYPE_F32, shape, a.data(), n * 4),
          tensor(VMOE_DTYPE_F32, shape, b.data(), n * 4)};
      for (int i = 0; i < 50; ++i) {
        std::vector<float> out(n, -99.0f);
        vmoe_tensor_t output = tensor(VMOE_DTYPE_F32, shape, out.data(), n * 4);
        vmoe_status_t status = vmoe_session_run(s.session, inputs, 2, &output,
                                                1, nullptr, nullptr);
        if (status == VMOE_STATUS_FAILED_PRECONDITION)
          ++refused;
        else if (status != VMOE_STATUS_OK || out != want)
          ++wrong;
        else
          ++ran;
      }
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(ran.load(), 0);
  EXPECT_EQ(ran.load() + refused.load(), 8 * 50);
}

// ---- forged bindings ---------------------------------------------------------

TEST(ForgedBindings, MisalignedOffsetIsRefused) {
  for (fb::BufferKind kind : {fb::BufferKind::Arena, fb::BufferKind::Input,
                              fb::BufferKind::Output,
                              fb::BufferKind::Constant}) {
    ModuleWriter w;
    uint32_t exe = addTestExecutable(w);
    w.setBatch(1);
    w.addInput({"in", fb::DType::F32, {64}, -1});
    w.addOutput({"out", fb::DType::F32, {64}, -1});
    w.setArena(256);
    uint32_t c = w.addConstant("c", w.addSegment(std::vector<uint8_t>(256)),
                               fb::ConstantPlacement::InPlace, 0);
    KernelDesc copy;
    copy.name = "copy";
    copy.executable = exe;
    copy.entry = "vmoe_test_copy";
    copy.workgroupCount = {1, 1, 1};
    copy.bindingCount = 2;
    copy.writtenBindings = {false, true};
    BindingDesc source = {kind, kind == fb::BufferKind::Constant ? c : 0, 4,
                          128};
    w.addDispatch(
        {w.addKernel(copy), {source, BindingDesc::output(0, 0, 128)}, {}});
    Loaded loaded = loadBytes(serialize(w));
    EXPECT_EQ(loaded.status, VMOE_STATUS_INVALID_MODULE);
    EXPECT_EQ(loaded.message, "dispatch 0, binding 0: offset 4 is not a "
                              "multiple of 64 bytes");
  }
}

TEST(ForgedBindings, ConstantInALooselyAlignedSegmentIsRefused) {
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.addOutput({"out", fb::DType::F32, {64}, -1});
  w.setArena(0);
  w.addSegment(std::vector<uint8_t>(4), 4); // puts the next one at offset 4
  uint32_t c = w.addConstant("c", w.addSegment(std::vector<uint8_t>(256), 4),
                             fb::ConstantPlacement::InPlace, 0);
  KernelDesc copy;
  copy.name = "copy";
  copy.executable = exe;
  copy.entry = "vmoe_test_copy";
  copy.workgroupCount = {1, 1, 1};
  copy.bindingCount = 2;
  copy.writtenBindings = {false, true};
  w.addDispatch(
      {w.addKernel(copy),
       {BindingDesc::constant(c, 0, 256), BindingDesc::output(0, 0, 256)},
       {}});
  Loaded loaded = loadBytes(serialize(w));
  EXPECT_EQ(loaded.status, VMOE_STATUS_INVALID_MODULE);
  EXPECT_EQ(loaded.message, "dispatch 0, binding 0: constant 0 is in segment "
                            "2, aligned to 4 bytes; bound constants need 64");
}

/// A module whose copy kernel (src, dst) has its destination bound to a
/// constant; `written` is what the module says the kernel writes.
static void buildConstantDestination(ModuleWriter &w,
                                     std::vector<bool> written) {
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.addInput({"in", fb::DType::F32, {64}, -1});
  w.setArena(0);
  uint32_t c = w.addConstant("c", w.addSegment(std::vector<uint8_t>(256, 7)),
                             fb::ConstantPlacement::InPlace, 0);
  KernelDesc copy;
  copy.name = "copy";
  copy.executable = exe;
  copy.entry = "vmoe_test_copy";
  copy.bindingCount = 2;
  copy.writtenBindings = std::move(written);
  w.addDispatch(
      {w.addKernel(copy),
       {BindingDesc::input(0, 0, 256), BindingDesc::constant(c, 0, 256)},
       {}});
}

TEST(ForgedBindings, WrittenBindingOntoAConstantIsRefused) {
  ModuleWriter w;
  buildConstantDestination(w, {false, true});
  Loaded loaded = loadBytes(serialize(w));
  EXPECT_EQ(loaded.status, VMOE_STATUS_INVALID_MODULE);
  EXPECT_EQ(loaded.message, "dispatch 0, binding 1: kernel 0 ('copy') writes "
                            "binding 1, which is bound to constant 0 "
                            "(constants are read-only)");
}

TEST(ForgedBindings, ConstantBoundToAKernelThatRecordsNoWritesIsRefused) {
  // Without the flags every binding may be written.
  ModuleWriter w;
  buildConstantDestination(w, {});
  Loaded loaded = loadBytes(serialize(w));
  EXPECT_EQ(loaded.status, VMOE_STATUS_INVALID_MODULE);
  EXPECT_EQ(loaded.message,
            "dispatch 0, binding 1: kernel 0 ('copy') may write binding 1 "
            "(the module does not record which bindings its kernels write; "
            "recompile it), which is bound to constant 0 (constants are "
            "read-only)");
}

TEST(ForgedBindings, WrittenFlagsForEveryBinding) {
  ModuleWriter w;
  buildConstantDestination(w, {false});
  Loaded loaded = loadBytes(serialize(w));
  EXPECT_EQ(loaded.status, VMOE_STATUS_INVALID_MODULE);
  EXPECT_EQ(loaded.message,
            "kernel 0 ('copy'): 1 written-binding flags for 2 bindings");
}

TEST(ForgedBindings, ReadBindingMayBeAConstant) {
  ModuleWriter w;
  buildConstantDestination(w, {true, false});
  Loaded loaded = loadBytes(serialize(w));
  EXPECT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
}

TEST(ForgedBindings, KernelCannotWriteThroughACopiedConstant) {
  // A kernel output bound to an arena-placed constant: the constant's copy
  // is read-only, so the write faults instead of changing the weights that
  // every later run reads.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.addInput({"in", fb::DType::F32, {64}, -1});
  w.setArena(256);
  uint32_t c = w.addConstant("c", w.addSegment(std::vector<uint8_t>(256, 7)),
                             fb::ConstantPlacement::Arena, 0);
  KernelDesc copy;
  copy.name = "copy";
  copy.executable = exe;
  copy.entry = "vmoe_test_copy";
  copy.workgroupCount = {1, 1, 1};
  copy.bindingCount = 2;
  // A lying module: it says the kernel writes nothing, so the verifier lets
  // the constant be bound and only the read-only copy stands in the way.
  copy.writtenBindings = {false, false};
  w.addDispatch(
      {w.addKernel(copy),
       {BindingDesc::input(0, 0, 256), BindingDesc::constant(c, 0, 256)},
       {}});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  auto run = [&] {
    SessionHolder s;
    createSession(loaded.module, s, 1);
    std::vector<float> in(64, 1.0f);
    std::vector<int64_t> shape = {64};
    vmoe_tensor_t input = tensor(VMOE_DTYPE_F32, shape, in.data(), 256);
    vmoe_session_run(s.session, &input, 1, nullptr, 0, nullptr, nullptr);
    fprintf(stderr, "the kernel wrote into the constant\n");
    exit(0);
  };
  EXPECT_DEATH(run(), "");
}

TEST(ForgedBindings, KernelCannotWriteThroughAnInPlaceConstantOfACopy) {
  // The same forgery on a constant used in place from a module that the
  // runtime copied (VMOE_MEMORY_COPY, as loadBytes does; the copying file
  // load is the same memory): the copy is read-only once filled.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.addInput({"in", fb::DType::F32, {64}, -1});
  w.setArena(256);
  uint32_t c = w.addConstant("c", w.addSegment(std::vector<uint8_t>(256, 7)),
                             fb::ConstantPlacement::InPlace, 0);
  KernelDesc copy;
  copy.name = "copy";
  copy.executable = exe;
  copy.entry = "vmoe_test_copy";
  copy.workgroupCount = {1, 1, 1};
  copy.bindingCount = 2;
  // A lying module: it says the kernel writes nothing, so the verifier lets
  // the constant be bound and only the read-only copy stands in the way.
  copy.writtenBindings = {false, false};
  w.addDispatch(
      {w.addKernel(copy),
       {BindingDesc::input(0, 0, 256), BindingDesc::constant(c, 0, 256)},
       {}});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  auto run = [&] {
    SessionHolder s;
    createSession(loaded.module, s, 1);
    std::vector<float> in(64, 1.0f);
    std::vector<int64_t> shape = {64};
    vmoe_tensor_t input = tensor(VMOE_DTYPE_F32, shape, in.data(), 256);
    vmoe_session_run(s.session, &input, 1, nullptr, 0, nullptr, nullptr);
    fprintf(stderr, "the kernel wrote into the constant\n");
    exit(0);
  };
  EXPECT_DEATH(run(), "");
}

} // namespace
} // namespace test
} // namespace vmoe
