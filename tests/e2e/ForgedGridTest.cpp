//===- ForgedGridTest.cpp - a module that asks for more workgroups --------===//
//
// A real compiled module whose metadata claims four times the x grid of one
// kernel (the one with the most workgroups, then each kernel in turn). The
// verifier cannot know the compiled grid (it is in the code, not the
// metadata), so the forgery loads; the kernel's entry must then refuse the
// workgroups past its grid (kEntryOutsideGrid) and the run must fail with a
// message naming the kernel. No death test: without the guard most kernels
// silently run the extra workgroups (the run succeeds: the test fails) and
// some index out of bounds and crash this process, which fails the test too.
//
// The same module with push constants that lie: one kernel of a MoE layer
// gets another knob (or the batch) where its capacity belongs, so that the
// slot maps one kernel writes are read by another with other strides. The
// kernels clamp every index they read from another kernel's buffer, so the
// run computes garbage but stays inside its buffers (found by the
// module_schema fuzzer: the expert-up gather read a token index from stale
// arena bytes and crashed).
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "vmoe/module_format.h"
#include "vmoe/module_generated.h"
#include "vmoe/runtime.h"
#include "vmoe/writer/ModuleDigests.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace {

using namespace mlir::vmoe;

/// A small model of random weights, compiled for this machine.
std::vector<uint8_t> compileSmall() {
  VitMoeConfig config = vmoe::e2e::smallVitMoe("forged-grid");
  return vmoe::e2e::compileForHost(config, randomWeights(config, 11));
}

vmoe::fb::Module *rootOf(std::vector<uint8_t> &bytes) {
  vmoe_module_header_t header;
  memcpy(&header, bytes.data(), sizeof(header));
  return vmoe::fb::GetMutableModule(bytes.data() + header.flatbuffer_offset);
}

/// The kernel with the most workgroups.
uint32_t largestKernel(std::vector<uint8_t> &bytes) {
  const auto *kernels = rootOf(bytes)->kernels();
  uint32_t largest = 0;
  uint64_t most = 0;
  for (uint32_t k = 0; k < kernels->size(); ++k) {
    const vmoe::fb::Dim3 *g = kernels->Get(k)->workgroup_count();
    uint64_t count = uint64_t(g->x()) * g->y() * g->z();
    if (count > most) {
      most = count;
      largest = k;
    }
  }
  return largest;
}

/// Multiplies the x grid of kernel `k` by 4 and keeps every batch grid of
/// its dispatches consistent with it (the verifier checks that one gives the
/// kernel's grid at the maximum batch), so that the forgery passes the
/// verifier and only the kernel's own guard can stop it. Reseals the
/// metadata digest. Returns the kernel's name.
std::string forgeGrid(std::vector<uint8_t> &bytes, uint32_t k) {
  vmoe::fb::Module *root = rootOf(bytes);
  vmoe::fb::Kernel *kernel = root->mutable_kernels()->GetMutableObject(k);
  uint32_t forgedX = kernel->workgroup_count()->x() * 4;
  kernel->mutable_workgroup_count()->mutate_x(forgedX);
  // ceil(forgedX * maxBatch / maxBatch) workgroups at the maximum batch.
  int64_t maxBatch = root->signature()->max_batch();
  auto *dispatches = root->mutable_dispatches();
  for (uint32_t d = 0; d < dispatches->size(); ++d) {
    vmoe::fb::Dispatch *dispatch = dispatches->GetMutableObject(d);
    if (dispatch->kernel() != k || !dispatch->batch_grid())
      continue;
    dispatch->mutable_batch_grid()->mutate_units_per_image(forgedX);
    dispatch->mutable_batch_grid()->mutate_units_per_workgroup(
        static_cast<uint64_t>(maxBatch));
  }
  std::string error;
  EXPECT_TRUE(vmoe::writer::resealMetadata(bytes.data(), bytes.size(), &error))
      << error;
  return kernel->name() ? kernel->name()->str() : std::string();
}

/// Loads `bytes` and runs them at the maximum batch, then (with
/// `alsoBatchOne`) at batch 1; the last status and its message.
vmoe_status_t loadAndRun(const std::vector<uint8_t> &bytes, std::string &text,
                         bool alsoBatchOne = false) {
  vmoe_module_t *module = nullptr;
  vmoe_session_t *session = nullptr;
  vmoe_message_t msg = {};
  vmoe_status_t status = vmoe_module_load_memory(
      bytes.data(), bytes.size(), VMOE_MEMORY_COPY, &module, &msg);
  if (status != VMOE_STATUS_OK) {
    text = std::string("load: ") + msg.text;
    return status;
  }
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 2;
  status = vmoe_session_create(module, &options, &session, &msg);
  if (status == VMOE_STATUS_OK) {
    vmoe_tensor_info_t in, out;
    vmoe_module_input_info(module, 0, &in, &msg);
    vmoe_module_output_info(module, 0, &out, &msg);
    std::vector<float> images(in.size_bytes / 4), logits(out.size_bytes / 4);
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> dist(-1, 1);
    for (float &v : images)
      v = dist(rng);
    vmoe_tensor_t input = {in.dtype, in.rank, in.shape, images.data(),
                           in.size_bytes};
    vmoe_tensor_t output = {out.dtype, out.rank, out.shape, logits.data(),
                            out.size_bytes};
    vmoe_run_options_t runOptions = {0.0, -1};
    status =
        vmoe_session_run(session, &input, 1, &output, 1, &runOptions, &msg);
    if (status == VMOE_STATUS_OK && alsoBatchOne) {
      std::vector<int64_t> inShape(in.shape, in.shape + in.rank),
          outShape(out.shape, out.shape + out.rank);
      inShape[0] = outShape[0] = 1;
      input.shape = inShape.data();
      output.shape = outShape.data();
      status =
          vmoe_session_run(session, &input, 1, &output, 1, &runOptions, &msg);
    }
  }
  text = msg.text;
  vmoe_session_destroy(session);
  vmoe_module_release(module);
  return status;
}

/// Compiled once for every test of this file.
const std::vector<uint8_t> &smallModule() {
  static const std::vector<uint8_t> bytes = compileSmall();
  return bytes;
}

/// Forges kernel `k`'s grid in a copy of the small module and expects the
/// run to fail in that kernel with kEntryOutsideGrid (targets/cpu Passes.h).
void expectRefused(uint32_t k) {
  std::vector<uint8_t> bytes = smallModule();
  std::string kernel = forgeGrid(bytes, k);
  ASSERT_FALSE(kernel.empty());
  std::string text;
  EXPECT_EQ(loadAndRun(bytes, text), VMOE_STATUS_KERNEL_FAILED)
      << "forged kernel " << k << " ('" << kernel << "'): " << text;
  EXPECT_NE(text.find("('" + kernel + "') failed with code 4"),
            std::string::npos)
      << text;
}

TEST(ForgedGrid, TheModuleAsCompiledRuns) {
  ASSERT_FALSE(smallModule().empty());
  std::string text;
  EXPECT_EQ(loadAndRun(smallModule(), text), VMOE_STATUS_OK) << text;
}

TEST(ForgedGrid, LargestKernelRefusesWorkgroupsPastItsGrid) {
  std::vector<uint8_t> bytes = smallModule();
  ASSERT_FALSE(bytes.empty());
  expectRefused(largestKernel(bytes));
}

TEST(ForgedGrid, EveryKernelRefusesWorkgroupsPastItsGrid) {
  std::vector<uint8_t> bytes = smallModule();
  ASSERT_FALSE(bytes.empty());
  uint32_t count = rootOf(bytes)->kernels()->size();
  for (uint32_t k = 0; k < count; ++k)
    expectRefused(k);
}

/// The bundled model (models/fashion-mnist), compiled once for the tests of
/// this file: a plan where the slot maps share arena bytes with earlier
/// buffers, so stale values are there to be misread.
const std::vector<uint8_t> &bundledModule() {
  static const std::vector<uint8_t> bytes = [] {
    VitMoeConfig config;
    WeightMap weights;
    std::string error;
    if (!vmoe::e2e::loadBundledModel(config, weights, nullptr, &error))
      return std::vector<uint8_t>();
    config.batchSize = 8; // one routing group of 8 images
    return vmoe::e2e::compileForHost(config, weights);
  }();
  return bytes;
}

/// Every dispatch of `original` that takes a MoE layer's capacity, one at a
/// time, given the layer's BPR flag, its k or the call's batch instead, then
/// run at the maximum batch and at batch 1.
void expectForgedKnobsStayInBounds(const std::vector<uint8_t> &original) {
  const vmoe::fb::PushConstantSource forged[] = {
      vmoe::fb::PushConstantSource::MoeBpr, vmoe::fb::PushConstantSource::MoeK,
      vmoe::fb::PushConstantSource::BatchSize};
  std::vector<uint8_t> copy = original;
  uint32_t forgeries = 0;
  auto *dispatches = rootOf(copy)->dispatches();
  for (uint32_t d = 0; d < dispatches->size(); ++d) {
    const auto *constants = dispatches->Get(d)->push_constants();
    for (uint32_t c = 0; constants && c < constants->size(); ++c) {
      if (constants->Get(c)->source() !=
          vmoe::fb::PushConstantSource::MoeCapacity)
        continue;
      for (vmoe::fb::PushConstantSource source : forged) {
        std::vector<uint8_t> bytes = original;
        rootOf(bytes)
            ->mutable_dispatches()
            ->GetMutableObject(d)
            ->mutable_push_constants()
            ->GetMutableObject(c)
            ->mutate_source(source);
        std::string error;
        ASSERT_TRUE(
            vmoe::writer::resealMetadata(bytes.data(), bytes.size(), &error))
            << error;
        std::string text;
        vmoe_status_t status = loadAndRun(bytes, text, true);
        // Refused or run; a crash ends the test binary instead.
        EXPECT_TRUE(status == VMOE_STATUS_OK ||
                    status == VMOE_STATUS_INVALID_MODULE)
            << "dispatch " << d << ": " << text;
        ++forgeries;
      }
    }
  }
  EXPECT_GT(forgeries, 0u);
}

TEST(ForgedKnobs, KernelsStayInsideTheirBuffersWhenPushConstantsLie) {
  ASSERT_FALSE(smallModule().empty());
  expectForgedKnobsStayInBounds(smallModule());
  ASSERT_FALSE(bundledModule().empty());
  expectForgedKnobsStayInBounds(bundledModule());
}

} // namespace
