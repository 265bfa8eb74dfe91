//===- SessionTest.cpp - Load, run, threads, inputs, kernel errors --------===//

#include "TestSupport.h"

#include <atomic>
#include <cstdio>
#include <thread>
#include <unistd.h>

namespace vmoe {
namespace test {
namespace {

std::vector<float> pattern(size_t n, float seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = seed + 0.5f * static_cast<float>(i % 13) - 0.125f * (i % 5);
  return v;
}

/// Runs the add module on `batch` images; returns the status.
vmoe_status_t runAdd(vmoe_session_t *session, int64_t batch,
                     std::vector<float> *out, std::string *messageOut = nullptr,
                     float seed = 1.0f) {
  size_t n = static_cast<size_t>(batch * kAddWidth);
  std::vector<float> a = pattern(n, seed), b = pattern(n, -2.0f * seed);
  out->assign(n, -99.0f);
  std::vector<int64_t> shape = {batch, kAddWidth};
  vmoe_tensor_t inputs[2] = {tensor(VMOE_DTYPE_F32, shape, a.data(), n * 4),
                             tensor(VMOE_DTYPE_F32, shape, b.data(), n * 4)};
  vmoe_tensor_t output = tensor(VMOE_DTYPE_F32, shape, out->data(), n * 4);
  vmoe_message_t message;
  vmoe_status_t status =
      vmoe_session_run(session, inputs, 2, &output, 1, nullptr, &message);
  if (status == VMOE_STATUS_OK) {
    std::vector<float> want = expectedAdd(a, b);
    for (size_t i = 0; i < n; ++i)
      EXPECT_FLOAT_EQ((*out)[i], want[i]) << "at " << i;
  } else if (messageOut) {
    *messageOut = message.text;
  }
  return status;
}

std::string tempPath(const char *name) {
  const char *dir = getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/vmoe-test-" +
         std::to_string(getpid()) + "-" + name;
}

TEST(Session, RunProducesCorrectValues) {
  ModuleWriter w;
  buildAddModule(w);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  std::vector<float> out;
  EXPECT_EQ(runAdd(s.session, 4, &out), VMOE_STATUS_OK);
  // A smaller batch: kernels see shorter bindings, rows past it are skipped.
  EXPECT_EQ(runAdd(s.session, 2, &out), VMOE_STATUS_OK);
  EXPECT_EQ(runAdd(s.session, 1, &out), VMOE_STATUS_OK);
  EXPECT_EQ(runAdd(s.session, 4, &out, nullptr, 3.0f), VMOE_STATUS_OK);
}

TEST(Session, BatchGridShrinksWithTheBatch) {
  // The add dispatch runs ceil(b * 256 / 64) workgroups of 64 elements: too
  // few would leave elements unwritten (-99), so every batch checks the grid.
  ModuleWriter w;
  buildAddModule(w, false, 64);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 2);
  std::vector<float> out;
  for (int64_t batch : {4, 1, 3, 2, 4})
    EXPECT_EQ(runAdd(s.session, batch, &out, nullptr, float(batch)),
              VMOE_STATUS_OK)
        << "batch " << batch;
}

TEST(Session, ArenaPlacedConstant) {
  ModuleWriter w;
  buildAddModule(w, /*arenaConstant=*/true);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 2);
  std::vector<float> out;
  EXPECT_EQ(runAdd(s.session, 3, &out), VMOE_STATUS_OK);
}

TEST(Session, LoadFromFile) {
  ModuleWriter w;
  buildAddModule(w);
  std::string path = tempPath("add.vmoe");
  std::string error;
  writer::ModuleLayout layout;
  ASSERT_TRUE(w.writeFile(path, &error, &layout)) << error;
  // The streamed file equals the in-memory build.
  EXPECT_EQ(readFileBytes(path), serialize(w));
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  ASSERT_EQ(vmoe_module_load_file(path.c_str(), &module, &message),
            VMOE_STATUS_OK)
      << message.text;
  unlink(path.c_str()); // the mapping stays valid
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  EXPECT_EQ(info.file_size, layout.fileSize);
  SessionHolder s;
  createSession(module, s, 2);
  vmoe_module_release(module); // the session keeps it alive
  std::vector<float> out;
  EXPECT_EQ(runAdd(s.session, 4, &out), VMOE_STATUS_OK);

  EXPECT_EQ(vmoe_module_load_file("/nonexistent/x.vmoe", &module, &message),
            VMOE_STATUS_IO_ERROR);
  EXPECT_NE(std::string(message.text).find("cannot open '/nonexistent/x.vmoe'"),
            std::string::npos)
      << message.text;
  EXPECT_EQ(vmoe_module_load_file("/tmp", &module, &message),
            VMOE_STATUS_IO_ERROR);
}

TEST(Session, LoadFromMemoryCopyAndBorrow) {
  ModuleWriter w;
  buildAddModule(w);
  std::vector<uint8_t> bytes = serialize(w);

  // Copy: the caller's buffer can go right away.
  vmoe_module_t *copied = nullptr;
  vmoe_message_t message;
  {
    std::vector<uint8_t> temporary = bytes;
    ASSERT_EQ(vmoe_module_load_memory(temporary.data(), temporary.size(),
                                      VMOE_MEMORY_COPY, &copied, &message),
              VMOE_STATUS_OK)
        << message.text;
    memset(temporary.data(), 0xAB, temporary.size());
  }
  {
    SessionHolder s;
    createSession(copied, s, 1);
    std::vector<float> out;
    EXPECT_EQ(runAdd(s.session, 4, &out), VMOE_STATUS_OK);
  }
  vmoe_module_release(copied);

  // Borrow: used in place from an aligned buffer.
  void *aligned = nullptr;
  ASSERT_EQ(posix_memalign(&aligned, 4096, bytes.size() + 1), 0);
  memcpy(aligned, bytes.data(), bytes.size());
  vmoe_module_t *borrowed = nullptr;
  ASSERT_EQ(vmoe_module_load_memory(aligned, bytes.size(), VMOE_MEMORY_BORROW,
                                    &borrowed, &message),
            VMOE_STATUS_OK)
      << message.text;
  {
    SessionHolder s;
    createSession(borrowed, s, 1);
    std::vector<float> out;
    EXPECT_EQ(runAdd(s.session, 4, &out), VMOE_STATUS_OK);
  }
  vmoe_module_release(borrowed);

  // A misaligned borrowed buffer is refused, and the message says why.
  memmove(static_cast<uint8_t *>(aligned) + 1, aligned, bytes.size());
  EXPECT_EQ(vmoe_module_load_memory(static_cast<uint8_t *>(aligned) + 1,
                                    bytes.size(), VMOE_MEMORY_BORROW, &borrowed,
                                    &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("must be 4096-byte aligned"),
            std::string::npos)
      << message.text;
  free(aligned);
}

TEST(Session, ModuleInfo) {
  ModuleWriter w;
  buildAddModule(w);
  w.setMetadata({"adder", "{\"k\": 1}", {"cat", "dog"}, "vmoe-test"});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_module_info_t info;
  vmoe_module_info(loaded.module, &info);
  EXPECT_EQ(info.format_major,
            static_cast<uint32_t>(VMOE_FORMAT_VERSION_MAJOR));
  EXPECT_STREQ(info.name, "adder");
  EXPECT_STREQ(info.config_json, "{\"k\": 1}");
  EXPECT_STREQ(info.producer, "vmoe-test");
  EXPECT_EQ(info.class_count, 2u);
  EXPECT_STREQ(vmoe_module_class_name(loaded.module, 1), "dog");
  EXPECT_EQ(vmoe_module_class_name(loaded.module, 2), nullptr);
  EXPECT_EQ(info.input_count, 2u);
  EXPECT_EQ(info.output_count, 1u);
  EXPECT_EQ(info.max_batch, kAddMaxBatch);
  EXPECT_EQ(info.kernel_count, 3u);
  EXPECT_EQ(info.dispatch_count, 2u + kAddMaxBatch);
  EXPECT_EQ(info.constant_bytes, static_cast<uint64_t>(kAddWidth * 4));
  vmoe_tensor_info_t t;
  vmoe_message_t message;
  ASSERT_EQ(vmoe_module_input_info(loaded.module, 1, &t, &message),
            VMOE_STATUS_OK);
  EXPECT_STREQ(t.name, "b");
  EXPECT_EQ(t.dtype, VMOE_DTYPE_F32);
  EXPECT_EQ(t.rank, 2u);
  EXPECT_EQ(t.shape[1], kAddWidth);
  EXPECT_EQ(t.batch_dim, 0);
  EXPECT_EQ(t.size_bytes, static_cast<uint64_t>(kAddMaxBatch * kAddWidth * 4));
  EXPECT_EQ(vmoe_module_output_info(loaded.module, 1, &t, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("output index 1 out of range"),
            std::string::npos);
  vmoe_executable_info_t x;
  ASSERT_EQ(vmoe_module_executable_info(loaded.module, 0, &x, &message),
            VMOE_STATUS_OK);
  EXPECT_EQ(x.format, VMOE_EXECUTABLE_CPU_SHARED_OBJECT);
  EXPECT_STREQ(x.target_triple, hostTriple());
  EXPECT_EQ(x.size_bytes, testKernelsSo().size());
}

TEST(Session, InputsAreCheckedAgainstTheSignature) {
  ModuleWriter w;
  buildAddModule(w);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  std::vector<float> a(8 * kAddWidth), b(8 * kAddWidth), out(8 * kAddWidth);
  std::vector<int32_t> ints(8 * kAddWidth);
  std::vector<int64_t> shape = {2, kAddWidth};
  auto run = [&](vmoe_tensor_t x, vmoe_tensor_t y, vmoe_tensor_t o,
                 uint32_t inputCount = 2) {
    vmoe_tensor_t inputs[2] = {x, y};
    vmoe_message_t message;
    message.text[0] = 0;
    vmoe_status_t status = vmoe_session_run(s.session, inputs, inputCount, &o,
                                            1, nullptr, &message);
    EXPECT_EQ(status, VMOE_STATUS_INVALID_ARGUMENT);
    return std::string(message.text);
  };
  vmoe_tensor_t goodA = tensor(VMOE_DTYPE_F32, shape, a.data(), a.size() * 4);
  vmoe_tensor_t goodB = tensor(VMOE_DTYPE_F32, shape, b.data(), b.size() * 4);
  vmoe_tensor_t goodOut =
      tensor(VMOE_DTYPE_F32, shape, out.data(), out.size() * 4);

  std::string m = run(goodA, goodB, goodOut, 1);
  EXPECT_NE(m.find("expected 2 inputs, got 1"), std::string::npos) << m;

  vmoe_tensor_t wrongType =
      tensor(VMOE_DTYPE_I32, shape, ints.data(), ints.size() * 4);
  m = run(goodA, wrongType, goodOut);
  EXPECT_NE(m.find("input 1 ('b'): expected dtype f32, got i32"),
            std::string::npos)
      << m;

  std::vector<int64_t> wrongWidth = {2, kAddWidth + 1};
  m = run(tensor(VMOE_DTYPE_F32, wrongWidth, a.data(), a.size() * 4), goodB,
          goodOut);
  EXPECT_NE(m.find("input 0 ('a'): expected shape [4,256] (dim 0 is the "
                   "batch, up to 4), got [2,257]"),
            std::string::npos)
      << m;

  std::vector<int64_t> rank1 = {2 * kAddWidth};
  m = run(goodA, goodB, tensor(VMOE_DTYPE_F32, rank1, out.data(), 4096));
  EXPECT_NE(m.find("output 0 ('out'): expected shape [4,256]"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("got [512]"), std::string::npos) << m;

  std::vector<int64_t> tooBig = {5, kAddWidth};
  m = run(tensor(VMOE_DTYPE_F32, tooBig, a.data(), a.size() * 4),
          tensor(VMOE_DTYPE_F32, tooBig, b.data(), b.size() * 4),
          tensor(VMOE_DTYPE_F32, tooBig, out.data(), out.size() * 4));
  EXPECT_NE(m.find("input 0 ('a'): batch 5 must be in [1, 4]"),
            std::string::npos)
      << m;

  std::vector<int64_t> three = {3, kAddWidth};
  m = run(goodA, tensor(VMOE_DTYPE_F32, three, b.data(), b.size() * 4),
          goodOut);
  EXPECT_NE(m.find("input 1 ('b'): batch 3 differs from the batch 2"),
            std::string::npos)
      << m;

  m = run(goodA, goodB, tensor(VMOE_DTYPE_F32, shape, out.data(), 100));
  EXPECT_NE(m.find("output 0 ('out'): the buffer holds 100 bytes"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("the tensor needs 2048"), std::string::npos) << m;

  m = run(goodA, tensor(VMOE_DTYPE_F32, shape, nullptr, 2048), goodOut);
  EXPECT_NE(m.find("input 1 ('b'): the buffer holds 2048 bytes"),
            std::string::npos)
      << m;

  // And the session still works afterwards.
  std::vector<float> result;
  EXPECT_EQ(runAdd(s.session, 2, &result), VMOE_STATUS_OK);
}

TEST(Session, MultithreadedGridSplitGivesIdenticalOutputs) {
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  const uint32_t gx = 7, gy = 5, gz = 3, count = gx * gy * gz;
  w.setBatch(1);
  w.addOutput({"stamps", fb::DType::I32, {count * 2}, -1});
  w.setArena(0);
  KernelDesc stamp;
  stamp.name = "stamp";
  stamp.executable = exe;
  stamp.entry = "vmoe_test_stamp";
  stamp.workgroupCount = {gx, gy, gz};
  stamp.bindingCount = 1;
  stamp.writtenBindings = {true};
  stamp.scratchSize = 100; // rounded up to 128 per worker
  uint32_t kernel = w.addKernel(stamp);
  w.addDispatch({kernel, {BindingDesc::output(0, 0, count * 8)}, {}});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;

  auto runWith = [&](uint32_t threads) {
    SessionHolder s;
    createSession(loaded.module, s, threads);
    EXPECT_EQ(vmoe_session_thread_count(s.session), threads);
    std::vector<int32_t> out(count * 2, -1);
    std::vector<int64_t> shape = {count * 2};
    vmoe_tensor_t t = tensor(VMOE_DTYPE_I32, shape, out.data(), count * 8);
    vmoe_message_t message;
    EXPECT_EQ(vmoe_session_run(s.session, nullptr, 0, &t, 1, nullptr, &message),
              VMOE_STATUS_OK)
        << message.text;
    return out;
  };
  std::vector<int32_t> one = runWith(1);
  // Every workgroup id appears exactly once, in its own slot.
  for (uint32_t z = 0; z < gz; ++z)
    for (uint32_t y = 0; y < gy; ++y)
      for (uint32_t x = 0; x < gx; ++x) {
        uint32_t id = x + gx * (y + gy * z);
        EXPECT_EQ(static_cast<uint32_t>(one[2 * id]),
                  x | (y << 10) | (z << 20));
      }
  for (uint32_t threads : {2u, 3u, 8u, 16u})
    EXPECT_EQ(runWith(threads), one) << threads << " threads";

  // The add module too, over several calls.
  ModuleWriter addWriter;
  buildAddModule(addWriter);
  Loaded add = loadBytes(serialize(addWriter));
  ASSERT_EQ(add.status, VMOE_STATUS_OK) << add.message;
  SessionHolder s1, s8;
  createSession(add.module, s1, 1);
  createSession(add.module, s8, 8);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> a, b;
    ASSERT_EQ(runAdd(s1.session, 4, &a, nullptr, 0.1f * i), VMOE_STATUS_OK);
    ASSERT_EQ(runAdd(s8.session, 4, &b, nullptr, 0.1f * i), VMOE_STATUS_OK);
    EXPECT_EQ(a, b);
  }
}

TEST(Session, KernelFailureIsReportedWithTheWorkgroup) {
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.setArena(0);
  KernelDesc failing;
  failing.name = "failing";
  failing.executable = exe;
  failing.entry = "vmoe_test_fail";
  failing.workgroupCount = {4, 3, 2};
  failing.constantCount = 1;
  uint32_t kernel = w.addKernel(failing);
  // Linear id 17 = (1, 1, 1) in a 4x3 plane: 1 + 4*(1 + 3*1).
  w.addDispatch({kernel, {}, {PushConstantDesc::literal(-1)}});
  w.addDispatch({kernel, {}, {PushConstantDesc::literal(17)}});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  for (uint32_t threads : {1u, 4u}) {
    SessionHolder s;
    createSession(loaded.module, s, threads);
    vmoe_message_t message;
    EXPECT_EQ(
        vmoe_session_run(s.session, nullptr, 0, nullptr, 0, nullptr, &message),
        VMOE_STATUS_KERNEL_FAILED);
    EXPECT_STREQ(message.text, "dispatch 1: kernel 0 ('failing') failed with "
                               "code 7 in workgroup (1,1,1)");
  }
}

TEST(Session, TwoSessionsOnOneModuleInTwoThreads) {
  ModuleWriter w;
  buildAddModule(w);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  std::vector<float> reference[8];
  {
    SessionHolder s;
    createSession(loaded.module, s, 1);
    for (int i = 0; i < 8; ++i)
      ASSERT_EQ(runAdd(s.session, 1 + i % 4, &reference[i], nullptr, 0.5f * i),
                VMOE_STATUS_OK);
  }
  auto worker = [&](uint32_t threads, int *mismatches) {
    SessionHolder s;
    createSession(loaded.module, s, threads);
    for (int round = 0; round < 25; ++round)
      for (int i = 0; i < 8; ++i) {
        std::vector<float> out;
        if (runAdd(s.session, 1 + i % 4, &out, nullptr, 0.5f * i) !=
                VMOE_STATUS_OK ||
            out != reference[i])
          ++*mismatches;
      }
  };
  int mismatchesA = 0, mismatchesB = 0;
  std::thread a(worker, 2u, &mismatchesA);
  std::thread b(worker, 3u, &mismatchesB);
  a.join();
  b.join();
  EXPECT_EQ(mismatchesA, 0);
  EXPECT_EQ(mismatchesB, 0);
}

TEST(Session, ConcurrentSessionCreationLoadsTheExecutableOnce) {
  ModuleWriter w;
  buildAddModule(w);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      vmoe_session_t *session = nullptr;
      vmoe_message_t message;
      if (vmoe_session_create(loaded.module, nullptr, &session, &message))
        ++failures;
      std::vector<float> out;
      if (session && runAdd(session, 4, &out) != VMOE_STATUS_OK)
        ++failures;
      vmoe_session_destroy(session);
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Session, HugeArenaIsRefusedCleanly) {
  // A file may ask for any arena; the session says no instead of dying.
  ModuleWriter w;
  w.setArena(1ull << 60);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_session_t *session = nullptr;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_session_create(loaded.module, nullptr, &session, &message),
            VMOE_STATUS_OUT_OF_MEMORY);
  EXPECT_STREQ(message.text,
               "cannot allocate the 1152921504606846976-byte arena");
  EXPECT_EQ(session, nullptr);
}

TEST(Session, OptionsAreChecked) {
  ModuleWriter w;
  buildAddModule(w);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.device = VMOE_DEVICE_CUDA;
  vmoe_session_t *session = nullptr;
  vmoe_message_t message;
  // A CPU module on CUDA: no driver, no GPU, or not CUDA code; each says so.
  EXPECT_NE(vmoe_session_create(loaded.module, &options, &session, &message),
            VMOE_STATUS_OK);
  EXPECT_EQ(session, nullptr);
  EXPECT_NE(std::string(message.text).find("CUDA"), std::string::npos)
      << message.text;
  vmoe_session_options_init(&options);
  options.bpr = 3;
  EXPECT_EQ(vmoe_session_create(loaded.module, &options, &session, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  vmoe_session_options_init(&options);
  options.thread_count = 100000;
  EXPECT_EQ(vmoe_session_create(loaded.module, &options, &session, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(vmoe_session_create(nullptr, nullptr, &session, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_STREQ(message.text, "module is null");
  EXPECT_EQ(session, nullptr);
  // Defaults: one thread per CPU.
  ASSERT_EQ(vmoe_session_create(loaded.module, nullptr, &session, &message),
            VMOE_STATUS_OK);
  EXPECT_GE(vmoe_session_thread_count(session), 1u);
  vmoe_session_destroy(session);
  EXPECT_STREQ(vmoe_status_name(VMOE_STATUS_INVALID_MODULE), "INVALID_MODULE");
  EXPECT_EQ(vmoe_dtype_size(VMOE_DTYPE_BF16), 2u);
  EXPECT_STREQ(vmoe_dtype_name(VMOE_DTYPE_BF16), "bf16");
}

} // namespace
} // namespace test
} // namespace vmoe
