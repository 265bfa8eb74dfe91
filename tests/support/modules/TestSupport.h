//===- TestSupport.h - Modules of the runtime and writer tests --*- C++ -*-===//
#ifndef VMOE_TESTS_SUPPORT_MODULES_TESTSUPPORT_H
#define VMOE_TESTS_SUPPORT_MODULES_TESTSUPPORT_H

#include "vmoe/runtime.h"
#include "vmoe/writer/ModuleWriter.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace vmoe {
namespace test {

using writer::BindingDesc;
using writer::DispatchDesc;
using writer::KernelDesc;
using writer::ModuleWriter;
using writer::MoeLayerDesc;
using writer::PushConstantDesc;
using writer::TensorDesc;

inline std::vector<uint8_t> readFileBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
                              std::istreambuf_iterator<char>());
}

/// The test kernels' shared object (TestKernels.c), built by CMake.
inline const std::vector<uint8_t> &testKernelsSo() {
  static const std::vector<uint8_t> bytes =
      readFileBytes(VMOE_TEST_KERNELS_PATH);
  return bytes;
}

/// The same kernels built with VMOE_TEST_KERNELS_VARIANT: vmoe_test_add_f32
/// subtracts. Same symbol names, different code.
inline const std::vector<uint8_t> &testKernelsVariantSo() {
  static const std::vector<uint8_t> bytes =
      readFileBytes(VMOE_TEST_KERNELS_VARIANT_PATH);
  return bytes;
}

inline const char *hostTriple() {
#if defined(__x86_64__)
  return "x86_64-unknown-linux-gnu";
#elif defined(__aarch64__)
  return "aarch64-unknown-linux-gnu";
#else
  return "unknown-unknown-linux-gnu";
#endif
}

/// Adds the test kernels as CPU executable; returns its index.
inline uint32_t addTestExecutable(ModuleWriter &w, std::string features = "",
                                  const std::vector<uint8_t> *so = nullptr) {
  uint32_t segment = w.addSegment(so ? *so : testKernelsSo(), 4096);
  return w.addCpuExecutable("test_kernels", hostTriple(), std::move(features),
                            segment);
}

inline std::vector<uint8_t> toBytes(const std::vector<float> &values) {
  std::vector<uint8_t> out(values.size() * sizeof(float));
  memcpy(out.data(), values.data(), out.size());
  return out;
}

/// Recomputes the metadata digest of a module that a test patched in place,
/// so that the load reaches the check the test is about instead of stopping
/// at the digest. A header whose ranges do not hold is left as it is (the
/// verifier refuses those before it reads the digest).
inline void reseal(std::vector<uint8_t> &bytes) {
  std::string error;
  writer::resealMetadata(bytes.data(), bytes.size(), &error);
}
inline std::vector<uint8_t> resealed(std::vector<uint8_t> bytes) {
  reseal(bytes);
  return bytes;
}

inline std::vector<uint8_t> serialize(const ModuleWriter &w) {
  std::vector<uint8_t> bytes;
  std::string error;
  EXPECT_TRUE(w.writeToBuffer(bytes, &error)) << error;
  return bytes;
}

/// Result of a load: the status, the message, and the module on success.
struct Loaded {
  vmoe_status_t status = VMOE_STATUS_INTERNAL;
  std::string message;
  vmoe_module_t *module = nullptr;
  Loaded() = default;
  Loaded(const Loaded &) = delete;
  Loaded &operator=(const Loaded &) = delete;
  Loaded(Loaded &&other) noexcept
      : status(other.status), message(std::move(other.message)),
        module(other.module) {
    other.module = nullptr;
  }
  Loaded &operator=(Loaded &&other) noexcept {
    std::swap(status, other.status);
    std::swap(message, other.message);
    std::swap(module, other.module);
    return *this;
  }
  ~Loaded() { vmoe_module_release(module); }
};

inline Loaded loadBytes(const std::vector<uint8_t> &bytes) {
  Loaded result;
  vmoe_message_t message;
  message.text[0] = 0;
  result.status = vmoe_module_load_memory(
      bytes.data(), bytes.size(), VMOE_MEMORY_COPY, &result.module, &message);
  if (result.status)
    result.message = message.text;
  return result;
}

/// RAII session.
struct SessionHolder {
  vmoe_session_t *session = nullptr;
  SessionHolder() = default;
  SessionHolder(const SessionHolder &) = delete;
  SessionHolder &operator=(const SessionHolder &) = delete;
  ~SessionHolder() { vmoe_session_destroy(session); }
};

inline void createSession(vmoe_module_t *module, SessionHolder &holder,
                          uint32_t threads = 0, double capacityFactor = 0,
                          int32_t bpr = -1) {
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = threads;
  options.capacity_factor = capacityFactor;
  options.bpr = bpr;
  vmoe_message_t message;
  ASSERT_EQ(vmoe_session_create(module, &options, &holder.session, &message),
            VMOE_STATUS_OK)
      << message.text;
}

inline vmoe_tensor_t tensor(vmoe_dtype_t dtype,
                            const std::vector<int64_t> &shape, void *data,
                            uint64_t bytes) {
  vmoe_tensor_t t;
  t.dtype = dtype;
  t.rank = static_cast<uint32_t>(shape.size());
  t.shape = shape.data();
  t.data = data;
  t.size_bytes = bytes;
  return t;
}

// ---- modules the tests share ------------------------------------------------

/// out = (a + b) * 2.5 + c, a/b/out: f32[B, 256] (batch dim 0, B <= 4),
/// c: a 256-float constant broadcast per image by the third dispatch.
/// Dispatch 0 adds into an arena buffer (grid 16x1x1), dispatch 1 scales it
/// into the output (grid 4x2x2), dispatch 2 adds c per image (grid 4x1x1).
constexpr int64_t kAddMaxBatch = 4;
constexpr int64_t kAddWidth = 256;

inline std::vector<float> addConstantValues() {
  std::vector<float> c(kAddWidth);
  for (int64_t i = 0; i < kAddWidth; ++i)
    c[i] = 0.25f * static_cast<float>(i % 7);
  return c;
}

/// `addBatchGrid`: when nonzero, the add dispatch's grid follows the batch
/// with kAddWidth units per image and this many per workgroup.
/// `kernels`: the shared object to embed (default: testKernelsSo()).
inline void buildAddModule(ModuleWriter &w, bool arenaConstant = false,
                           uint64_t addBatchGrid = 0,
                           const std::vector<uint8_t> *kernels = nullptr) {
  const uint64_t bytes = kAddMaxBatch * kAddWidth * 4;
  uint32_t exe = addTestExecutable(w, "", kernels);
  w.setBatch(kAddMaxBatch);
  w.addInput({"a", fb::DType::F32, {kAddMaxBatch, kAddWidth}, 0});
  w.addInput({"b", fb::DType::F32, {kAddMaxBatch, kAddWidth}, 0});
  w.addOutput({"out", fb::DType::F32, {kAddMaxBatch, kAddWidth}, 0});
  // Arena: [0, bytes) the sum; [bytes, bytes + 1024) c when arena-placed.
  w.setArena(bytes + kAddWidth * 4, 64);
  uint32_t cSegment = w.addSegment(toBytes(addConstantValues()), 64);
  uint32_t c = w.addConstant("c", cSegment,
                             arenaConstant ? fb::ConstantPlacement::Arena
                                           : fb::ConstantPlacement::InPlace,
                             arenaConstant ? bytes : 0);
  KernelDesc add;
  add.name = "add";
  add.executable = exe;
  add.entry = "vmoe_test_add_f32";
  add.workgroupCount = {16, 1, 1};
  add.bindingCount = 3;
  add.constantCount = 1;
  add.writtenBindings = {false, false, true};
  uint32_t addKernel = w.addKernel(add);
  KernelDesc scale;
  scale.name = "scale";
  scale.executable = exe;
  scale.entry = "vmoe_test_scale_f32";
  scale.workgroupCount = {4, 2, 2};
  scale.bindingCount = 2;
  scale.constantCount = 2;
  scale.writtenBindings = {false, true};
  uint32_t scaleKernel = w.addKernel(scale);
  KernelDesc addRow = add;
  addRow.name = "add_row";
  addRow.workgroupCount = {kAddMaxBatch, 1, 1};
  uint32_t addRowKernel = w.addKernel(addRow);
  const uint64_t tile = kAddMaxBatch * kAddWidth / 16;
  w.addDispatch(
      {addKernel,
       {BindingDesc::input(0, 0, bytes), BindingDesc::input(1, 0, bytes),
        BindingDesc::arena(0, bytes)},
       {PushConstantDesc::literal(static_cast<int64_t>(tile))},
       addBatchGrid ? static_cast<uint64_t>(kAddWidth) : 0,
       addBatchGrid});
  w.addDispatch(
      {scaleKernel,
       {BindingDesc::arena(0, bytes), BindingDesc::output(0, 0, bytes)},
       {PushConstantDesc::literal(2500),
        PushConstantDesc::literal(static_cast<int64_t>(tile))}});
  // One dispatch per image row: out[b] += c, bound by the real batch through
  // the output binding's length.
  for (int64_t b = 0; b < kAddMaxBatch; ++b) {
    uint64_t rowBytes = kAddWidth * 4;
    w.addDispatch({addRowKernel,
                   {BindingDesc::output(0, b * rowBytes, rowBytes),
                    BindingDesc::constant(c, 0, rowBytes),
                    BindingDesc::output(0, b * rowBytes, rowBytes)},
                   {PushConstantDesc::literal(kAddWidth / kAddMaxBatch)}});
  }
}

/// Expected output of the add module.
inline std::vector<float> expectedAdd(const std::vector<float> &a,
                                      const std::vector<float> &b) {
  std::vector<float> c = addConstantValues();
  std::vector<float> out(a.size());
  for (size_t i = 0; i < a.size(); ++i)
    out[i] = (a[i] + b[i]) * 2.5f + c[i % kAddWidth];
  return out;
}

/// A module whose one kernel writes its push constants to the int64[4]
/// output: [capacity(layer 0), bpr(layer 0), batch, 42].
inline void buildEchoModule(ModuleWriter &w, uint32_t groupSize, uint32_t k,
                            uint32_t experts, double defaultCf, double maxCf,
                            uint32_t maxCapacity, bool defaultBpr = false) {
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.addOutput({"constants", fb::DType::I64, {4}, -1});
  w.setArena(0);
  MoeLayerDesc layer;
  layer.name = "moe0";
  layer.numExperts = experts;
  layer.k = k;
  layer.groupSize = groupSize;
  layer.numGroups = 1;
  layer.numTokens = groupSize;
  layer.tokensPerImage = groupSize;
  layer.defaultCapacityFactor = defaultCf;
  layer.maxCapacityFactor = maxCf;
  layer.maxCapacity = maxCapacity;
  layer.defaultBpr = defaultBpr;
  w.addMoeLayer(layer);
  KernelDesc echo;
  echo.name = "echo";
  echo.executable = exe;
  echo.entry = "vmoe_test_echo_constants";
  echo.bindingCount = 1;
  echo.constantCount = 4;
  echo.writtenBindings = {true};
  uint32_t kernel = w.addKernel(echo);
  w.addDispatch(
      {kernel,
       {BindingDesc::output(0, 0, 32)},
       {PushConstantDesc::capacity(0), PushConstantDesc::bpr(0),
        PushConstantDesc::batchSize(), PushConstantDesc::literal(42)}});
}

} // namespace test
} // namespace vmoe

#endif // VMOE_TESTS_SUPPORT_MODULES_TESTSUPPORT_H
