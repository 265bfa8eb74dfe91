//===- ShardedModelTest.cpp - expert-sharded modules against one process --===//
//
// One model compiled for N expert shards (compileToShardedModules) runs as N
// ranks, threads of this process joined by the in-process collective, each
// on its contiguous slice of the images; their logits must equal bitwise
// those of the unsharded module on all the images (issue #20): the bundled
// model with 2 and 4 ranks, random E=8 and E=32 models, at the default
// capacity and at a lower capacity factor with BPR (tokens dropped).
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "InProcessCollective.h"
#include "vmoe/Import/ModelBuilder.h"
#include "vmoe/Pipelines/Compile.h"
#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Npz.h"
#include "vmoe/readers/TensorSource.h"
#include "vmoe/readers/Weights.h"
#include "vmoe/runtime.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>

namespace {

using mlir::vmoe::VitMoeConfig;
using mlir::vmoe::WeightMap;

/// `config` (its batch) with `weights` compiled whole (shards 1) or into
/// `shards` rank modules.
std::vector<std::vector<uint8_t>> compile(const VitMoeConfig &config,
                                          const WeightMap &weights,
                                          unsigned shards,
                                          bool bf16Math = false) {
  mlir::vmoe::CompileOptions options;
  options.expertBf16Math = bf16Math;
  return vmoe::e2e::compileRanks(config, weights, shards, options);
}

/// Runs `bytes` on `images` (batch x item floats) into `logits`; with a
/// collective, as that rank.
void runModule(const std::vector<uint8_t> &bytes, const VitMoeConfig &config,
               const float *images, int64_t batch, float *logits,
               const vmoe_collective_t *collective, double cf, int bpr,
               std::string *failure) {
  vmoe_message_t msg;
  vmoe_module_t *module = nullptr;
  vmoe_session_t *session = nullptr;
  if (vmoe_module_load_memory(bytes.data(), bytes.size(), VMOE_MEMORY_COPY,
                              &module, &msg) != VMOE_STATUS_OK) {
    *failure = msg.text;
    return;
  }
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 1;
  options.collective = collective;
  if (vmoe_session_create(module, &options, &session, &msg) == VMOE_STATUS_OK) {
    int64_t inShape[4] = {batch, config.imageHeight, config.imageWidth,
                          config.channels};
    int64_t outShape[2] = {batch, config.numClasses};
    uint64_t item = config.imageHeight * config.imageWidth * config.channels;
    vmoe_tensor_t in = {VMOE_DTYPE_F32, 4, inShape, const_cast<float *>(images),
                        static_cast<uint64_t>(batch * item * 4)};
    vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, outShape, logits,
                         static_cast<uint64_t>(batch * config.numClasses * 4)};
    vmoe_run_options_t run = {cf, bpr};
    if (vmoe_session_run(session, &in, 1, &out, 1, &run, &msg) !=
        VMOE_STATUS_OK)
      *failure = msg.text;
  } else {
    *failure = msg.text;
  }
  vmoe_session_destroy(session);
  vmoe_module_release(module);
}

/// The rank modules of `config` (batch: images per rank) on `shards` ranks
/// against the whole module on all shards x batch images; `runPerRank`
/// (when set) runs a smaller batch: that many images per rank.
void expectShardsMatch(VitMoeConfig config, const WeightMap &weights,
                       unsigned shards, const std::vector<float> &images,
                       int64_t runPerRank = 0, bool bf16Math = false) {
  std::vector<std::vector<uint8_t>> ranks =
      compile(config, weights, shards, bf16Math);
  config.batchSize *= shards;
  int64_t perRank = runPerRank ? runPerRank : config.batchSize / shards;
  int64_t all = perRank * shards;
  std::vector<std::vector<uint8_t>> whole =
      compile(config, weights, 1, bf16Math);
  ASSERT_EQ(ranks.size(), shards);
  ASSERT_EQ(whole.size(), 1u);
  uint64_t item = config.imageHeight * config.imageWidth * config.channels;
  ASSERT_GE(images.size(), all * item);
  int64_t classes = config.numClasses;
  struct Case {
    double cf;
    int bpr;
  };
  for (Case c : {Case{0.0, -1}, Case{0.5, 1}, Case{0.5, 0}}) {
    SCOPED_TRACE("batch " + std::to_string(all) + ", capacity factor " +
                 std::to_string(c.cf) + ", BPR " + std::to_string(c.bpr));
    std::vector<float> want(all * classes), got(all * classes, -1.0f);
    std::string failure;
    runModule(whole[0], config, images.data(), all, want.data(), nullptr, c.cf,
              c.bpr, &failure);
    ASSERT_EQ(failure, "");
    vmoe::test::InProcessGroup group(shards);
    std::vector<std::string> failures(shards);
    std::vector<std::thread> threads;
    for (unsigned r = 0; r < shards; ++r)
      threads.emplace_back([&, r] {
        runModule(ranks[r], config, images.data() + r * perRank * item, perRank,
                  got.data() + r * perRank * classes, group.collective(r), c.cf,
                  c.bpr, &failures[r]);
      });
    for (std::thread &t : threads)
      t.join();
    for (unsigned r = 0; r < shards; ++r)
      ASSERT_EQ(failures[r], "") << "rank " << r;
    // Bitwise: the same f32 operations in the same order per row.
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * 4), 0);
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(want[i], got[i]) << "logit " << i;
  }
}

std::vector<float> randomImages(const VitMoeConfig &config, int64_t n) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> images(n * config.imageHeight * config.imageWidth *
                            config.channels);
  for (float &v : images)
    v = dist(rng);
  return images;
}

TEST(ShardedModel, BundledModelOnTwoAndFourRanks) {
  VitMoeConfig config;
  WeightMap weights, samples;
  std::string error;
  ASSERT_TRUE(vmoe::e2e::loadBundledModel(config, weights, &samples, &error))
      << error;
  const std::vector<float> &images = samples.at("inputs").data;
  // A routing group is 8 images: each rank runs one group.
  config.batchSize = 8;
  config.maxCapacityFactor = 2.0;
  for (unsigned shards : {2u, 4u}) {
    SCOPED_TRACE(std::to_string(shards) + " ranks");
    expectShardsMatch(config, weights, shards, images);
  }
}

TEST(ShardedModel, RandomModelsWithEightAndThirtyTwoExperts) {
  // E = 8 on 2 ranks, E = 32 on 4 (8 experts each).
  for (auto [experts, shards] : {std::pair<int64_t, unsigned>{8, 2},
                                 std::pair<int64_t, unsigned>{32, 4}}) {
    SCOPED_TRACE(std::to_string(experts) + " experts");
    VitMoeConfig config = vmoe::e2e::smallVitMoe("sharded");
    config.numExperts = experts;
    config.moeLayers = {0, 1};
    config.batchSize = 2;
    WeightMap weights = mlir::vmoe::randomWeights(config, 17 + experts);
    expectShardsMatch(config, weights, shards, randomImages(config, 8));
    // A smaller batch than compiled: fewer groups, smaller chunks.
    expectShardsMatch(config, weights, shards, randomImages(config, 8), 1);
  }
}

TEST(ShardedModel, ExpertChoiceRouting) {
  // Each expert picks its tokens of the rank's groups; the picked rows go
  // to the expert's rank and back.
  VitMoeConfig config = vmoe::e2e::smallVitMoe("sharded-choice");
  config.numExperts = 8;
  config.expertChoice = true;
  config.numSelectedExperts = 1;
  config.moeLayers = {0, 1};
  config.batchSize = 2;
  WeightMap weights = mlir::vmoe::randomWeights(config, 23);
  expectShardsMatch(config, weights, 4, randomImages(config, 8));
}

TEST(ShardedModel, Bf16ExpertMath) {
  // The ranks multiply the bf16 pairs with f32 FMAs; one process uses
  // vdpbf16ps where the CPU has it: the same bits (no denormal products
  // here).
  VitMoeConfig config = vmoe::e2e::smallVitMoe("sharded-bf16");
  config.numExperts = 8;
  config.moeLayers = {0, 1};
  config.batchSize = 2;
  WeightMap weights = mlir::vmoe::randomWeights(config, 29);
  expectShardsMatch(config, weights, 2, randomImages(config, 8), 0, true);
}

} // namespace
