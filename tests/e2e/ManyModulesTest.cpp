//===- ManyModulesTest.cpp - different compiled modules in one process ----===//
//
// The bundled model compiled for batch 8 and for batch 1, and with another
// maximum capacity factor, and a small model of another shape: each is run
// alone first, then all are loaded at once and run interleaved. Each must
// give, bit for bit, what it gave alone: every module runs its own code.
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Weights.h"
#include "vmoe/runtime.h"

#include <gtest/gtest.h>

#include <random>

namespace {

using namespace mlir::vmoe;

using vmoe::e2e::compileForHost;

/// A loaded module with one session; released in reverse.
struct Loaded {
  vmoe_module_t *module = nullptr;
  vmoe_session_t *session = nullptr;
  ~Loaded() {
    vmoe_session_destroy(session);
    vmoe_module_release(module);
  }
};

void load(const std::vector<uint8_t> &bytes, Loaded &out) {
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_module_load_memory(bytes.data(), bytes.size(),
                                    VMOE_MEMORY_COPY, &out.module, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 2;
  ASSERT_EQ(vmoe_session_create(out.module, &options, &out.session, &msg),
            VMOE_STATUS_OK)
      << msg.text;
}

/// Runs `l` on images from `seed` at the module's batch, at capacity factor
/// `cf`; returns the logits.
std::vector<float> run(const Loaded &l, uint64_t seed, double cf) {
  vmoe_tensor_info_t in, out;
  vmoe_message_t msg;
  EXPECT_EQ(vmoe_module_input_info(l.module, 0, &in, &msg), VMOE_STATUS_OK);
  EXPECT_EQ(vmoe_module_output_info(l.module, 0, &out, &msg), VMOE_STATUS_OK);
  std::vector<float> images(in.size_bytes / 4), logits(out.size_bytes / 4);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (float &v : images)
    v = dist(rng);
  vmoe_tensor_t input = {in.dtype, in.rank, in.shape, images.data(),
                         in.size_bytes};
  vmoe_tensor_t output = {out.dtype, out.rank, out.shape, logits.data(),
                          out.size_bytes};
  vmoe_run_options_t options = {cf, -1};
  EXPECT_EQ(vmoe_session_run(l.session, &input, 1, &output, 1, &options, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  return logits;
}

TEST(ManyModules, DifferentCompiledModulesRunInterleaved) {
  VitMoeConfig bundled;
  WeightMap weights;
  std::string error;
  ASSERT_TRUE(vmoe::e2e::loadBundledModel(bundled, weights, nullptr, &error))
      << error;

  struct Variant {
    std::vector<uint8_t> bytes;
    double cf;
  };
  std::vector<Variant> variants;
  for (auto [batch, maxCf, cf] :
       {std::tuple<int64_t, double, double>{8, 2.0, 2.0},
        {1, 2.0, 1.0},
        {8, 4.0, 4.0}}) {
    VitMoeConfig c = bundled;
    c.batchSize = batch;
    c.maxCapacityFactor = maxCf;
    if (batch == 1)
      c.groupSize = c.tokensPerImage(); // groups of 8 images need 8
    variants.push_back({compileForHost(c, weights), cf});
  }
  // Another architecture altogether, with random weights.
  VitMoeConfig small = vmoe::e2e::smallVitMoe("small");
  variants.push_back({compileForHost(small, randomWeights(small, 5)), 0.0});
  if (HasFailure())
    return;

  // Each alone: loaded, run, released before the next one is loaded.
  std::vector<std::vector<float>> alone;
  for (size_t i = 0; i < variants.size(); ++i) {
    Loaded l;
    load(variants[i].bytes, l);
    if (HasFatalFailure())
      return;
    alone.push_back(run(l, 100 + i, variants[i].cf));
  }
  // All at once, in two orders of loading, runs interleaved.
  for (bool reverse : {false, true}) {
    SCOPED_TRACE(reverse ? "loaded last to first" : "loaded first to last");
    std::vector<Loaded> all(variants.size());
    for (size_t k = 0; k < variants.size(); ++k) {
      size_t i = reverse ? variants.size() - 1 - k : k;
      load(variants[i].bytes, all[i]);
      if (HasFatalFailure())
        return;
    }
    for (int round = 0; round < 2; ++round)
      for (size_t i = 0; i < variants.size(); ++i)
        EXPECT_EQ(run(all[i], 100 + i, variants[i].cf), alone[i])
            << "module " << i << " gave other logits than alone";
  }
}

} // namespace
