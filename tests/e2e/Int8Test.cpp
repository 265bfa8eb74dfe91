//===- Int8Test.cpp - int8 experts and dense layers end to end ------------===//
//
// Models compiled with --expert-math=int8 / --dense-math=int8 for this CPU
// (vpdpbusd with AVX512-VNNI or AVX-VNNI, vpmaddwd with AVX2), run by the
// runtime and compared with the reference evaluator's int8 mode, which
// rounds the same way (tests/support/reference, GemmMath::Int8), and with
// its f32 mode.
//
// Tolerances. Against the int8 reference: the int32 sums are exact on both
// sides, but the f32 steps around them (layer norms, softmax, GELU, the
// epilogues) add in another order than the reference's, and where such a
// difference moves an activation across an int8 rounding boundary one q
// changes by one and the layers after it carry that. So: at most 10% of
// the logits may differ by more than 1e-4 of the logits' scale (measured:
// 4 of 280 on the random model, 73 of 960 on the bundled one, where a flip
// moves all 10 logits of its image), none by more than 2e-2 of it
// (measured: 3.5e-4 and 2.9e-3). Routing decisions (kept assignments,
// per-expert loads) compare exactly. Against f32: the quantization error
// itself (measured: 0.12 and 0.11 on logits of about 1 and 10).
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "ReferenceWeights.h"
#include "reference/Reference.h"
#include "vmoe/Import/ModelBuilder.h"
#include "vmoe/Pipelines/Compile.h"
#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Npz.h"
#include "vmoe/readers/TensorSource.h"
#include "vmoe/readers/Weights.h"
#include "vmoe/runtime.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

namespace {

using namespace mlir::vmoe;
namespace ref = vmoe::reference;

/// A compiled module and its session.
struct Module {
  vmoe_module_t *module = nullptr;
  vmoe_session_t *session = nullptr;
  ~Module() {
    vmoe_session_destroy(session);
    vmoe_module_release(module);
  }
};

/// `config` with `weights`, its experts and/or dense layers int8, compiled
/// for this CPU and opened.
void compileInt8(const VitMoeConfig &config, const WeightMap &weights,
                 bool expertInt8, bool denseInt8, Module &out,
                 const char *cpu = "host") {
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  std::string error;
  auto source = ::vmoe::readers::tensorMapSource(weights);
  auto module = buildVitMoe(context, config, source->shapes(), &error);
  ASSERT_TRUE(module) << error;
  CompileOptions options;
  options.parameters = source.get();
  options.cpu = cpu;
  options.expertInt8 = expertInt8;
  options.denseInt8 = denseInt8;
  options.modelName = config.name;
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(mlir::succeeded(compileToModule(*module, options, bytes, &error)))
      << error;
  vmoe::e2e::openSession(bytes, /*onGpu=*/false, &out.module, &out.session);
}

/// One batch through the module at (cf, bpr): its logits.
std::vector<float> runBatch(const VitMoeConfig &config, Module &m,
                            const float *images, double cf, int bpr) {
  std::vector<float> logits(config.batchSize * config.numClasses);
  int64_t inShape[4] = {config.batchSize, config.imageHeight, config.imageWidth,
                        config.channels};
  int64_t outShape[2] = {config.batchSize, config.numClasses};
  uint64_t inBytes = uint64_t(config.batchSize) * config.imageHeight *
                     config.imageWidth * config.channels * 4;
  vmoe_tensor_t in = {VMOE_DTYPE_F32, 4, inShape, const_cast<float *>(images),
                      inBytes};
  vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, outShape, logits.data(),
                       logits.size() * 4};
  vmoe_run_options_t ropts = {cf, bpr};
  vmoe_message_t msg;
  EXPECT_EQ(vmoe_session_run(m.session, &in, 1, &out, 1, &ropts, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  return logits;
}

ref::ModelConfig referenceConfig(const VitMoeConfig &config, double cf,
                                 bool bpr, bool expertInt8, bool denseInt8) {
  ref::ModelConfig rc;
  vmoe::e2e::referenceModelParts(config, rc);
  rc.moe.groupSize =
      config.groupSize > 0 ? config.groupSize : config.tokensPerImage();
  rc.moe.numSelectedExperts = config.numSelectedExperts;
  rc.moe.capacityFactor = cf;
  rc.moe.batchPriority = bpr;
  rc.moe.bf16Dispatch = config.bf16Dispatch;
  rc.moe.int8ExpertMath = expertInt8;
  rc.int8DenseMath = denseInt8;
  return rc;
}

/// The kept assignments and per-expert loads of every MoE layer of the
/// last run equal the reference's.
void expectSameRouting(const VitMoeConfig &config, Module &m,
                       const ref::ModelOutput &want) {
  ASSERT_EQ(want.moeLayers.size(), config.moeLayers.size());
  for (size_t l = 0; l < want.moeLayers.size(); ++l) {
    const ref::MoeStats &stats = want.moeLayers[l].second.stats;
    vmoe_routing_stats_t got;
    vmoe_message_t msg;
    ASSERT_EQ(vmoe_session_routing_stats(m.session, l, &got, &msg),
              VMOE_STATUS_OK)
        << msg.text;
    EXPECT_EQ(got.assignments_kept, uint64_t(stats.assignmentsKept))
        << "layer " << l;
    EXPECT_EQ(got.assignments_dropped, uint64_t(stats.assignmentsDropped))
        << "layer " << l;
    std::vector<uint64_t> assigned(config.numExperts), kept(config.numExperts);
    ASSERT_EQ(vmoe_session_expert_load(m.session, l, assigned.data(),
                                       kept.data(), config.numExperts, &msg),
              VMOE_STATUS_OK)
        << msg.text;
    for (int64_t e = 0; e < config.numExperts; ++e) {
      uint64_t wantKept = 0;
      for (int64_t g = 0; g < stats.expertKept.dim(0); ++g)
        wantKept += stats.expertKept.at(g, e);
      EXPECT_EQ(kept[e], wantKept) << "layer " << l << " expert " << e;
    }
  }
}

double maxAbsDiff(const std::vector<float> &got, const ref::Tensor &want) {
  double d = 0.0;
  for (size_t i = 0; i < got.size(); ++i)
    d = std::max(d, std::abs(double(got[i]) - want.data[i]));
  return d;
}

/// Logits against the int8 reference's: counts those off by more than
/// 1e-4 x the logits' scale (an int8 rounding flipped upstream) and keeps
/// the largest difference relative to that scale.
struct Int8Agreement {
  int64_t logits = 0, flipped = 0;
  double worst = 0.0;
  void add(const std::vector<float> &got, const ref::Tensor &want) {
    double scale = 1.0;
    for (float v : want.data)
      scale = std::max(scale, double(std::abs(v)));
    for (size_t i = 0; i < got.size(); ++i) {
      double d = std::abs(double(got[i]) - want.data[i]) / scale;
      worst = std::max(worst, d);
      flipped += d > 1e-4;
      ++logits;
    }
  }
};

/// A small random ViT-MoE whose sizes are multiples of 4 (int8 multiplies
/// groups of 4 input values), two MoE layers.
VitMoeConfig smallInt8Config() {
  VitMoeConfig c = vmoe::e2e::smallVitMoe("int8");
  c.numLayers = 4;
  c.moeLayers = {1, 3};
  c.batchSize = 4;
  c.groupSize = 2 * c.tokensPerImage();
  return c;
}

ref::Tensor randomImages(const VitMoeConfig &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  ref::Tensor images({c.batchSize, c.imageHeight, c.imageWidth, c.channels});
  for (float &v : images.data)
    v = dist(rng);
  return images;
}

/// The random model with int8 experts and dense layers against the int8
/// and the f32 reference, with and without drops, BPR on and off; then each
/// int8 part alone against its reference.
TEST(Int8, RandomModelMatchesTheInt8Reference) {
  VitMoeConfig c = smallInt8Config();
  WeightMap weights = randomWeights(c, 24);
  ref::ModelWeights refWeights = vmoe::e2e::toReference(c, weights);
  ref::Tensor images = randomImages(c, 5);
  struct Parts {
    bool expert, dense;
    const char *cpu;
  };
  std::vector<Parts> parts = {
      {true, true, "host"}, {true, false, "host"}, {false, true, "host"}};
#if defined(__x86_64__)
  // AVX2's vpmaddwd form too, where the host has vpdpbusd (x86-64-v3 runs
  // on every machine the tests run on).
  parts.push_back({true, true, "x86-64-v3"});
#endif
  Int8Agreement agreement;
  double worstF32 = 0.0;
  for (Parts p : parts) {
    SCOPED_TRACE(std::string("int8 experts ") + (p.expert ? "on" : "off") +
                 ", int8 dense " + (p.dense ? "on" : "off") + ", " + p.cpu);
    Module m;
    compileInt8(c, weights, p.expert, p.dense, m, p.cpu);
    if (HasFatalFailure())
      return;
    // Both parts: every knob; each alone: with and without drops.
    std::vector<std::pair<double, int>> runs = {{1.0, 1}, {0.5, 0}};
    if (p.expert && p.dense && std::string(p.cpu) == "host")
      runs.insert(runs.end(), {{0.5, 1}, {2.0, 0}});
    for (auto [cf, bpr] : runs) {
      SCOPED_TRACE("capacity factor " + std::to_string(cf) + ", BPR " +
                   std::to_string(bpr));
      std::vector<float> logits = runBatch(c, m, images.data.data(), cf, bpr);
      auto want = ref::visionTransformerMoe(
          images, refWeights, referenceConfig(c, cf, bpr, p.expert, p.dense));
      ASSERT_TRUE(want.ok()) << want.error();
      agreement.add(logits, want->logits);
      expectSameRouting(c, m, *want);
      auto f32 = ref::visionTransformerMoe(
          images, refWeights, referenceConfig(c, cf, bpr, false, false));
      ASSERT_TRUE(f32.ok()) << f32.error();
      worstF32 = std::max(worstF32, maxAbsDiff(logits, f32->logits));
    }
  }
  std::printf("int8 random model: %lld of %lld logits off the int8 reference "
              "by more than 1e-4 of their scale, at most %.3g; %.3g from "
              "f32\n",
              (long long)agreement.flipped, (long long)agreement.logits,
              agreement.worst, worstF32);
  EXPECT_LE(agreement.flipped * 10, agreement.logits);
  EXPECT_LT(agreement.worst, 2e-2);
  // The quantization error itself (logits about 1 in size).
  EXPECT_LT(worstF32, 0.25);
}

/// The bundled Fashion-MNIST model with int8 experts and dense layers:
/// against the int8 reference on 32 images at the default capacity factor
/// and at 0.5 with and without BPR; against the f32 golden logits (top-1 and
/// a logit bound).
TEST(Int8, BundledModelMatchesTheInt8Reference) {
  ::vmoe::readers::ModelConfig config;
  WeightMap weights, samples;
  std::string error;
  ASSERT_TRUE(vmoe::e2e::loadBundledModel(config, weights, &samples, &error))
      << error;
  config.batchSize = 8;
  config.maxCapacityFactor = 2.0;
  const WeightTensor &inputs = samples.at("inputs");
  const WeightTensor &golden = samples.at("logits");
  ref::ModelWeights refWeights = vmoe::e2e::toReference(config, weights);
  Module m;
  compileInt8(config, weights, true, true, m);
  if (HasFatalFailure())
    return;
  int64_t item = config.imageHeight * config.imageWidth * config.channels;
  int64_t classes = config.numClasses;
  Int8Agreement agreement;
  double worstF32 = 0.0;
  int64_t sameTop1 = 0, images = 0;
  for (auto [cf, bpr] :
       {std::pair{0.0, -1}, std::pair{0.5, 1}, std::pair{0.5, 0}}) {
    SCOPED_TRACE("capacity factor " + std::to_string(cf) + ", BPR " +
                 std::to_string(bpr));
    for (int64_t b = 0; b < 32; b += config.batchSize) {
      const float *batch = inputs.data.data() + b * item;
      std::vector<float> logits = runBatch(config, m, batch, cf, bpr);
      ref::Tensor refImages({config.batchSize, config.imageHeight,
                             config.imageWidth, config.channels});
      std::copy(batch, batch + config.batchSize * item, refImages.data.begin());
      // The module's defaults: the config's capacity factor and BPR.
      double refCf = cf > 0 ? cf : config.capacityFactor;
      bool refBpr = bpr >= 0 ? bpr : config.batchPriority;
      auto want = ref::visionTransformerMoe(
          refImages, refWeights,
          referenceConfig(config, refCf, refBpr, true, true));
      ASSERT_TRUE(want.ok()) << want.error();
      agreement.add(logits, want->logits);
      expectSameRouting(config, m, *want);
      if (cf != 0.0)
        continue;
      for (int64_t i = 0; i < config.batchSize; ++i) {
        const float *g = golden.data.data() + (b + i) * classes;
        const float *got = logits.data() + i * classes;
        for (int64_t k = 0; k < classes; ++k)
          worstF32 = std::max(worstF32, std::abs(double(got[k]) - g[k]));
        sameTop1 += std::max_element(got, got + classes) - got ==
                    std::max_element(g, g + classes) - g;
        ++images;
      }
    }
  }
  // Against f32 (logits up to about 10 in size): measured 0.11, the same
  // class for all 32 images.
  std::printf("int8 bundled model: %lld of %lld logits off the int8 "
              "reference by more than 1e-4 of their scale, at most %.3g; "
              "%.3g from f32, top-1 %lld of %lld\n",
              (long long)agreement.flipped, (long long)agreement.logits,
              agreement.worst, worstF32, (long long)sameTop1,
              (long long)images);
  EXPECT_LE(agreement.flipped * 10, agreement.logits);
  EXPECT_LT(agreement.worst, 2e-2);
  EXPECT_LT(worstF32, 0.5);
  EXPECT_GE(sameTop1, images - 2);
}

} // namespace
