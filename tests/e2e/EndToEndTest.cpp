//===- EndToEndTest.cpp - compiled V-MoE against the reference ------------===//
//
// Builds small V-MoE models from random weights, compiles them through the
// whole compiler (import, graph passes, kernel lowering, CPU code
// generation, serialization), runs them with the runtime's C API at several
// capacity factors with and without BPR, and compares with the reference
// evaluator: logits within a stated tolerance, routing statistics exactly.
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "ReferenceWeights.h"
#include "reference/Reference.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/Import/ModelBuilder.h"
#include "vmoe/Pipelines/Compile.h"
#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Npz.h"
#include "vmoe/readers/TensorSource.h"
#include "vmoe/readers/Weights.h"
#include "vmoe/runtime.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

namespace {

using namespace mlir::vmoe;
namespace ref = vmoe::reference;
using vmoe::e2e::toReference;

struct Module {
  vmoe_module_t *module = nullptr;
  vmoe_session_t *session = nullptr;
  ~Module() {
    vmoe_session_destroy(session);
    vmoe_module_release(module);
  }
};

class EndToEnd : public ::testing::TestWithParam<bool> {};

/// Compiles `config` with `weights`; returns the module and the reference
/// weights. `expertChoice`: the MoE layers route by expert choice (the
/// built IR is changed before compiling). With `streamFrom` (a weights file
/// holding `weights`), the compiler streams the parameters from that file
/// into a module file, as vmoe-compile does, instead of from memory.
void compileWeights(const VitMoeConfig &config, const WeightMap &weights,
                    Module &out, ref::ModelWeights &refWeights,
                    bool expertWeightsBf16 = false, bool expertBf16Math = false,
                    bool expertChoice = false,
                    const std::string &streamFrom = "") {
  refWeights = toReference(config, weights);
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  std::string error;
  std::unique_ptr<::vmoe::readers::TensorSource> source;
  if (streamFrom.empty()) {
    source = ::vmoe::readers::tensorMapSource(weights);
  } else {
    ::vmoe::readers::ExpectedShapes expected = expectedShapes(config);
    ::vmoe::readers::ReadOptions readOptions;
    readOptions.expected = &expected;
    source = ::vmoe::readers::openTensorFile(streamFrom, &error, readOptions);
    ASSERT_TRUE(source) << error;
  }
  auto module = buildVitMoe(context, config, source->shapes(), &error);
  ASSERT_TRUE(module) << error;
  if (expertChoice)
    module->walk([&](SparseMoeOp op) {
      op.setRoutingAttr(RoutingKindAttr::get(
          &context, mlir::vmoe::RoutingKind::ExpertChoice));
      op.setKAttr(mlir::Builder(&context).getI64IntegerAttr(1));
    });
  CompileOptions options;
  options.parameters = source.get();
  options.cpu = "host";
  // The same checks for the CUDA back end (setE2eTarget).
  bool onGpu = vmoe::e2e::setE2eTarget(options);
  options.expertWeightsBf16 = expertWeightsBf16;
  options.expertBf16Math = expertBf16Math;
  options.modelName = config.name;
  options.classNames = config.classNames;
  std::vector<uint8_t> bytes;
  if (streamFrom.empty()) {
    ASSERT_TRUE(
        mlir::succeeded(compileToModule(*module, options, bytes, &error)))
        << error;
  } else {
    std::string path = ::testing::TempDir() + "/streamed.vmoe";
    uint64_t size = 0;
    ASSERT_TRUE(mlir::succeeded(
        compileToModuleFile(*module, options, path, &error, nullptr, &size)))
        << error;
    std::ifstream file(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(file), {});
    std::remove(path.c_str());
    ASSERT_EQ(bytes.size(), size);
  }
  vmoe::e2e::openSession(bytes, onGpu, &out.module, &out.session);
}

void compileModel(const VitMoeConfig &config, uint64_t seed, Module &out,
                  ref::ModelWeights &refWeights) {
  compileWeights(config, randomWeights(config, seed), out, refWeights);
}

ref::Tensor randomImages(const VitMoeConfig &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  ref::Tensor images({c.batchSize, c.imageHeight, c.imageWidth, c.channels});
  for (float &v : images.data)
    v = dist(rng);
  return images;
}

/// Runs the compiled model and the reference at (cf, bpr) and compares.
/// The reference evaluator's config for `config` run at (cf, bpr).
ref::ModelConfig referenceConfig(const VitMoeConfig &config, double cf,
                                 bool bpr, bool bf16ExpertMath,
                                 bool expertChoice = false) {
  ref::ModelConfig refConfig;
  if (expertChoice)
    refConfig.moe.routing = ref::RoutingKind::ExpertChoice;
  refConfig.classifier = config.classifier == "token" ? ref::Classifier::Token
                                                      : ref::Classifier::Gap;
  refConfig.moe.groupSize =
      config.groupSize > 0 ? config.groupSize : config.tokensPerImage();
  refConfig.moe.numSelectedExperts = config.numSelectedExperts;
  refConfig.moe.capacityFactor = cf;
  refConfig.moe.batchPriority = bpr;
  refConfig.moe.bf16Dispatch = config.bf16Dispatch;
  refConfig.moe.bf16ExpertMath = bf16ExpertMath;
  return refConfig;
}

/// Runs `images` (config.batchSize of them) at (cf, bpr) and k =
/// config.numSelectedExperts, and compares with the reference. `padTo` >
/// the batch: the reference runs the batch padded with zero images that
/// take no slot (a batch that ends inside a routing group, docs/routing.md).
void expectMatch(const VitMoeConfig &config, Module &m,
                 const ref::ModelWeights &weights, const ref::Tensor &images,
                 double cf, bool bpr, bool bf16ExpertMath = false,
                 double *maxDiffOut = nullptr,
                 std::vector<float> *logitsOut = nullptr, int64_t padTo = 0,
                 bool expertChoice = false) {
  SCOPED_TRACE("capacity factor " + std::to_string(cf) + ", BPR " +
               (bpr ? "on" : "off") + ", k " +
               std::to_string(config.numSelectedExperts));
  ref::ModelConfig refConfig =
      referenceConfig(config, cf, bpr, bf16ExpertMath, expertChoice);
  ref::Tensor refImages = images;
  if (padTo > config.batchSize) {
    refImages = ref::Tensor(
        {padTo, config.imageHeight, config.imageWidth, config.channels});
    std::copy(images.data.begin(), images.data.end(), refImages.data.begin());
    refConfig.moe.paddingTokens =
        (padTo - config.batchSize) * config.tokensPerImage();
  }
  auto expected = ref::visionTransformerMoe(refImages, weights, refConfig);
  ASSERT_TRUE(expected.ok()) << expected.error();

  std::vector<float> logits(config.batchSize * config.numClasses);
  int64_t inShape[4] = {config.batchSize, config.imageHeight, config.imageWidth,
                        config.channels};
  int64_t outShape[2] = {config.batchSize, config.numClasses};
  vmoe_tensor_t in = {VMOE_DTYPE_F32, 4, inShape,
                      const_cast<float *>(images.data.data()),
                      images.data.size() * 4};
  vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, outShape, logits.data(),
                       logits.size() * 4};
  vmoe_run_options_t ropts = {
      cf, bpr ? 1 : 0,
      expertChoice ? 0u : static_cast<uint32_t>(config.numSelectedExperts)};
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_session_run(m.session, &in, 1, &out, 1, &ropts, &msg),
            VMOE_STATUS_OK)
      << msg.text;

  // Tolerance: f32 kernels against a double-accumulating reference, through
  // a few layers with bf16 expert inputs; a bf16 rounding can flip near a
  // tie, which moves a logit by about 1e-3 at these sizes.
  double maxDiff = 0.0;
  for (size_t i = 0; i < logits.size(); ++i)
    maxDiff = std::max(maxDiff,
                       std::abs(double(logits[i]) - expected->logits.data[i]));
  EXPECT_LT(maxDiff, 2e-3);
  if (maxDiffOut)
    *maxDiffOut = maxDiff;
  if (logitsOut)
    *logitsOut = logits;

  // Routing statistics: exactly the reference's decisions.
  ASSERT_EQ(expected->moeLayers.size(), config.moeLayers.size());
  for (size_t l = 0; l < expected->moeLayers.size(); ++l) {
    const ref::MoeStats &want = expected->moeLayers[l].second.stats;
    vmoe_routing_stats_t got;
    ASSERT_EQ(vmoe_session_routing_stats(m.session, l, &got, &msg),
              VMOE_STATUS_OK)
        << msg.text;
    EXPECT_EQ(got.assignments_kept, static_cast<uint64_t>(want.assignmentsKept))
        << "layer " << l;
    // A capacity that cannot hold every assignment must drop some: the
    // comparison then covers the dropping logic, not only the easy case.
    if (padTo <= config.batchSize && !expertChoice &&
        got.capacity * config.numExperts <
            static_cast<uint64_t>(refConfig.moe.groupSize) *
                config.numSelectedExperts)
      EXPECT_GT(got.assignments_dropped, 0u) << "layer " << l;
    EXPECT_EQ(got.assignments_dropped,
              static_cast<uint64_t>(want.assignmentsDropped))
        << "layer " << l;
    std::vector<uint64_t> assigned(config.numExperts), kept(config.numExperts);
    ASSERT_EQ(vmoe_session_expert_load(m.session, l, assigned.data(),
                                       kept.data(), config.numExperts, &msg),
              VMOE_STATUS_OK)
        << msg.text;
    for (int64_t e = 0; e < config.numExperts; ++e) {
      uint64_t wantAssigned = 0, wantKept = 0;
      for (int64_t g = 0; g < want.expertCounts.dim(0); ++g) {
        wantAssigned += want.expertCounts.at(g, e);
        wantKept += want.expertKept.at(g, e);
      }
      EXPECT_EQ(assigned[e], wantAssigned) << "layer " << l << " expert " << e;
      EXPECT_EQ(kept[e], wantKept) << "layer " << l << " expert " << e;
    }
    std::vector<double> shares(config.batchSize);
    ASSERT_EQ(vmoe_session_image_coverage(m.session, l, shares.data(),
                                          shares.size(), &msg),
              VMOE_STATUS_OK);
    for (int64_t b = 0; b < config.batchSize; ++b)
      EXPECT_DOUBLE_EQ(shares[b], want.imageTokenShare[b]);
  }
}

VitMoeConfig smallConfig() {
  VitMoeConfig c;
  c.name = "e2e";
  c.imageHeight = c.imageWidth = 16;
  c.patchSize = 4;
  c.hiddenSize = 32;
  c.numLayers = 4;
  c.mlpDim = 64;
  c.numHeads = 4;
  c.numClasses = 10;
  c.moeLayers = {1, 3};
  c.numExperts = 4;
  c.numSelectedExperts = 2;
  c.batchSize = 4;
  c.groupSize = 2 * c.tokensPerImage(); // groups span two images
  c.capacityFactor = 1.05;
  c.maxCapacityFactor = 2.0;
  return c;
}

TEST_P(EndToEnd, MatchesReferenceAcrossCapacityAndBpr) {
  VitMoeConfig config = smallConfig();
  config.batchPriority = GetParam();
  Module m;
  ref::ModelWeights weights;
  compileModel(config, 7, m, weights);
  if (HasFatalFailure())
    return;
  ref::Tensor images = randomImages(config, 11);
  for (double cf : {2.0, 1.05, 0.5, 0.25})
    for (bool bpr : {false, true})
      expectMatch(config, m, weights, images, cf, bpr);
}

INSTANTIATE_TEST_SUITE_P(DefaultBpr, EndToEnd, ::testing::Values(false, true));

TEST(EndToEndVariants, GapPoolingPreLogitsAndOddSizes) {
  // gap pooling, a tanh pre_logits layer, sizes that are not multiples of
  // the vector width, k = 1, no bf16 dispatch, one group per image.
  VitMoeConfig c = smallConfig();
  c.classifier = "gap";
  c.representationSize = 12;
  c.imageHeight = 15; // floor(15 / 4) = 3 patches: trailing pixels ignored
  c.imageWidth = 20;
  c.hiddenSize = 24;
  c.numHeads = 3;
  c.mlpDim = 40;
  c.numClasses = 7;
  c.numExperts = 3;
  c.numSelectedExperts = 1;
  c.groupSize = 0;
  c.bf16Dispatch = false;
  c.batchSize = 3;
  Module m;
  ref::ModelWeights weights;
  compileModel(c, 3, m, weights);
  if (HasFatalFailure())
    return;
  ref::Tensor images = randomImages(c, 5);
  for (double cf : {2.0, 0.5})
    expectMatch(c, m, weights, images, cf, true);
}

/// A module compiled for a batch of 4 runs any batch its MoE groups allow:
/// kernels bound their work by the call's batch and the grids shrink with it.
/// Full batches run first so that the smaller ones find stale routing data in
/// the groups past their batch.
TEST(EndToEndBatch, SmallerBatchesThanCompiledMatchTheReference) {
  VitMoeConfig c = smallConfig();
  c.groupSize = 0; // one group per image: every batch from 1 to 4
  c.numSelectedExperts = 1;
  Module m;
  ref::ModelWeights weights;
  compileModel(c, 21, m, weights);
  if (HasFatalFailure())
    return;
  vmoe_module_info_t info;
  vmoe_module_info(m.module, &info);
  EXPECT_EQ(info.max_batch, 4);
  EXPECT_EQ(info.batch_multiple, 1);
  ref::Tensor all = randomImages(c, 23);
  for (int64_t batch : {4, 1, 3, 2, 4, 1}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    VitMoeConfig small = c;
    small.batchSize = batch;
    ref::Tensor images({batch, c.imageHeight, c.imageWidth, c.channels});
    std::copy_n(all.data.begin(), images.data.size(), images.data.begin());
    for (double cf : {1.05, 0.5})
      expectMatch(small, m, weights, images, cf, true);
  }
}

/// Groups of two images: whole groups match the reference as they are; a
/// batch that ends inside a group runs too (batch step 1), its padding
/// taking no slot (RoutingPadding in RoutingTest.cpp checks those).
TEST(EndToEndBatch, GroupsSpanningImages) {
  VitMoeConfig c = smallConfig(); // groups of two images, batch 4
  Module m;
  ref::ModelWeights weights;
  compileModel(c, 25, m, weights);
  if (HasFatalFailure())
    return;
  vmoe_module_info_t info;
  vmoe_module_info(m.module, &info);
  EXPECT_EQ(info.batch_multiple, 1);
  ref::Tensor all = randomImages(c, 27);
  VitMoeConfig two = c;
  two.batchSize = 2;
  ref::Tensor images({2, c.imageHeight, c.imageWidth, c.channels});
  std::copy_n(all.data.begin(), images.data.size(), images.data.begin());
  expectMatch(c, m, weights, all, 0.5, false);
  expectMatch(two, m, weights, images, 0.5, false);
  expectMatch(two, m, weights, images, 0.5, true);
}

/// k per call on the whole model: a module compiled for k = 2 runs k = 1
/// (and 2), routing exactly as the reference at that k, the capacity
/// following k.
TEST(EndToEndRouting, KPerCallMatchesTheReference) {
  VitMoeConfig c = smallConfig(); // k = 2, groups of two images
  Module m;
  ref::ModelWeights weights;
  compileModel(c, 61, m, weights);
  if (HasFatalFailure())
    return;
  ref::Tensor images = randomImages(c, 63);
  for (int64_t k : {1, 2}) {
    VitMoeConfig atK = c;
    atK.numSelectedExperts = k;
    for (double cf : {1.05, 0.5})
      for (bool bpr : {false, true})
        expectMatch(atK, m, weights, images, cf, bpr);
  }
}

/// Batches of 1 and 3 on a module whose groups hold two images: the last
/// group is partial and its padding takes no slot, at k = 2 and 1.
TEST(EndToEndRouting, PartialGroupsMatchThePaddedReference) {
  VitMoeConfig c = smallConfig();
  Module m;
  ref::ModelWeights weights;
  compileModel(c, 65, m, weights);
  if (HasFatalFailure())
    return;
  ref::Tensor all = randomImages(c, 67);
  for (int64_t batch : {1, 3}) {
    VitMoeConfig part = c;
    part.batchSize = batch;
    ref::Tensor images({batch, c.imageHeight, c.imageWidth, c.channels});
    std::copy_n(all.data.begin(), images.data.size(), images.data.begin());
    for (int64_t k : {2, 1}) {
      part.numSelectedExperts = k;
      expectMatch(part, m, weights, images, 0.5, true, false, nullptr, nullptr,
                  batch + 1);
    }
  }
}

/// Expert choice through the whole model (both MoE layers, each combine
/// fused with its residual add): logits within the tolerance and routing
/// exactly, at several capacity factors, with BPR asked for (it does not
/// apply), and for a batch that ends inside a group.
TEST(EndToEndRouting, ExpertChoiceModelMatchesTheReference) {
  VitMoeConfig c = smallConfig(); // groups of two images
  Module m;
  ref::ModelWeights weights;
  compileWeights(c, randomWeights(c, 71), m, weights, false, false,
                 /*expertChoice=*/true);
  if (HasFatalFailure())
    return;
  ref::Tensor images = randomImages(c, 73);
  for (double cf : {2.0, 1.05, 0.5})
    expectMatch(c, m, weights, images, cf, cf < 1.0, false, nullptr, nullptr, 0,
                /*expertChoice=*/true);
  VitMoeConfig three = c;
  three.batchSize = 3;
  ref::Tensor part({3, c.imageHeight, c.imageWidth, c.channels});
  std::copy_n(images.data.begin(), part.data.size(), part.data.begin());
  expectMatch(three, m, weights, part, 0.5, false, false, nullptr, nullptr, 4,
              /*expertChoice=*/true);
}

/// float -> bfloat16 -> float, round to nearest even (finite inputs).
float roundToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

/// Rounds the experts' Dense kernels of `weights` to bf16 in place (what
/// bf16 expert weights store); returns how many values changed.
int roundExpertKernelsToBf16(WeightMap &weights) {
  int changed = 0;
  for (auto &[name, tensor] : weights)
    if (name.find("/Moe/Mlp/Dense_") != std::string::npos && name.size() > 7 &&
        name.compare(name.size() - 7, 7, "/kernel") == 0)
      for (float &v : tensor.data) {
        float r = roundToBf16(v);
        changed += r != v;
        v = r;
      }
  return changed;
}

/// Expert weights stored as bf16: the module must equal the reference run on
/// the same weights rounded to bf16 (and differ from the unrounded ones, so
/// the test sees that the rounding happens).
TEST(EndToEndPrecision, Bf16ExpertWeightsMatchTheRoundedReference) {
  VitMoeConfig c = smallConfig();
  c.batchPriority = true;
  WeightMap weights = randomWeights(c, 31);
  WeightMap rounded = weights;
  ASSERT_GT(roundExpertKernelsToBf16(rounded), 0)
      << "no expert kernel found to round";
  Module m;
  ref::ModelWeights unused;
  compileWeights(c, weights, m, unused, /*expertWeightsBf16=*/true);
  if (HasFatalFailure())
    return;
  ref::ModelWeights refRounded = toReference(c, rounded);
  ref::Tensor images = randomImages(c, 33);
  for (double cf : {1.05, 0.5})
    for (bool bpr : {false, true})
      expectMatch(c, m, refRounded, images, cf, bpr);
}

/// bf16 expert math (--expert-math=bf16): bf16 weights, expert inputs and
/// GELU output, f32 sums. The module must match the reference that rounds
/// the same three, with identical routing, and be far from the reference
/// that keeps the GELU output in f32 (so the test sees the hidden rounding
/// happen). Measured: 1.0e-4 from the first, 2.8e-3 to 6.3e-3 from the
/// second. On AVX2 machines this runs the f32-FMA form of the pair
/// arithmetic; the AVX512-BF16 form gives the same bits (scripts/
/// gpu-check.sh compares the two where the CPU has AVX512-BF16).
TEST(EndToEndPrecision, Bf16ExpertMathMatchesTheRoundedReference) {
  VitMoeConfig c = smallConfig();
  c.batchPriority = true;
  WeightMap weights = randomWeights(c, 41);
  WeightMap rounded = weights;
  roundExpertKernelsToBf16(rounded);
  Module m;
  ref::ModelWeights unused;
  compileWeights(c, weights, m, unused, /*expertWeightsBf16=*/false,
                 /*expertBf16Math=*/true);
  if (HasFatalFailure())
    return;
  ref::ModelWeights refRounded = toReference(c, rounded);
  ref::Tensor images = randomImages(c, 43);
  for (double cf : {1.05, 0.5})
    for (bool bpr : {false, true}) {
      SCOPED_TRACE("capacity factor " + std::to_string(cf) + ", BPR " +
                   (bpr ? "on" : "off"));
      double withHidden = 0.0;
      std::vector<float> logits;
      expectMatch(c, m, refRounded, images, cf, bpr, /*bf16ExpertMath=*/true,
                  &withHidden, &logits);
      EXPECT_LT(withHidden, 4e-4);
      auto other = ref::visionTransformerMoe(
          images, refRounded,
          referenceConfig(c, cf, bpr, /*bf16ExpertMath=*/false));
      ASSERT_TRUE(other.ok()) << other.error();
      ASSERT_EQ(other->logits.data.size(), logits.size());
      double withoutHidden = 0.0;
      for (size_t i = 0; i < logits.size(); ++i)
        withoutHidden = std::max(
            withoutHidden, std::abs(double(logits[i]) - other->logits.data[i]));
      EXPECT_GT(withoutHidden, 1.5e-3);
    }
}

} // namespace

namespace {

// Import: the same weights in vmoe's checkpoint format (2 shards, experts
// split across them), .npz and .safetensors, written by
// tests/import/make_checkpoints.py at build time, with the model config in
// vmoe's JSON layout. Each compiles to a module whose logits match the
// reference, and the three give identical logits.
TEST(EndToEndImport, AllWeightFormatsMatchTheReference) {
  ::vmoe::readers::ModelConfig config;
  std::string error;
  ASSERT_TRUE(
      ::vmoe::readers::readModelConfig(VMOE_E2E_IMPORT_CONFIG, config, &error))
      << error;
  std::vector<std::vector<float>> allLogits;
  for (const char *suffix : {".index", ".npz", ".safetensors"}) {
    SCOPED_TRACE(suffix);
    WeightMap weights;
    ASSERT_TRUE(::vmoe::readers::readWeights(
        std::string(VMOE_E2E_IMPORT_WEIGHTS) + suffix, weights, &error))
        << error;
    Module m;
    ref::ModelWeights refWeights;
    compileWeights(config, weights, m, refWeights);
    if (HasFatalFailure())
      return;
    ref::Tensor images = randomImages(config, 17);
    for (double cf : {1.05, 0.5})
      expectMatch(config, m, refWeights, images, cf, cf < 1.0);
    // The class names travel with the module.
    EXPECT_STREQ(vmoe_module_class_name(m.module, 2), "c");
    std::vector<float> logits(config.batchSize * config.numClasses);
    int64_t inShape[4] = {config.batchSize, config.imageHeight,
                          config.imageWidth, config.channels};
    int64_t outShape[2] = {config.batchSize, config.numClasses};
    vmoe_tensor_t in = {VMOE_DTYPE_F32, 4, inShape, images.data.data(),
                        images.data.size() * 4};
    vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, outShape, logits.data(),
                         logits.size() * 4};
    vmoe_message_t msg;
    ASSERT_EQ(vmoe_session_run(m.session, &in, 1, &out, 1, nullptr, &msg),
              VMOE_STATUS_OK)
        << msg.text;
    allLogits.push_back(logits);
  }
  ASSERT_EQ(allLogits.size(), 3u);
  EXPECT_EQ(allLogits[0], allLogits[1]);
  EXPECT_EQ(allLogits[0], allLogits[2]);
}

// The same weights streamed from each file by name, one tensor at a time,
// into a module file (vmoe-compile's path): the logits match the reference
// and those compiled from memory, bit for bit.
TEST(EndToEndImport, StreamedFromEachFormatMatchesTheReference) {
  ::vmoe::readers::ModelConfig config;
  std::string error;
  ASSERT_TRUE(
      ::vmoe::readers::readModelConfig(VMOE_E2E_IMPORT_CONFIG, config, &error))
      << error;
  ref::Tensor images = randomImages(config, 23);
  std::vector<std::vector<float>> allLogits;
  for (bool stream : {false, true})
    for (const char *suffix : {".index", ".npz", ".safetensors"}) {
      SCOPED_TRACE(std::string(suffix) + (stream ? " streamed" : ""));
      std::string path = std::string(VMOE_E2E_IMPORT_WEIGHTS) + suffix;
      WeightMap weights;
      ASSERT_TRUE(::vmoe::readers::readWeights(path, weights, &error)) << error;
      Module m;
      ref::ModelWeights refWeights;
      compileWeights(config, weights, m, refWeights, false, false, false,
                     stream ? path : "");
      if (HasFatalFailure())
        return;
      expectMatch(config, m, refWeights, images, 1.05, false);
      std::vector<float> logits(config.batchSize * config.numClasses);
      int64_t inShape[4] = {config.batchSize, config.imageHeight,
                            config.imageWidth, config.channels};
      int64_t outShape[2] = {config.batchSize, config.numClasses};
      vmoe_tensor_t in = {VMOE_DTYPE_F32, 4, inShape, images.data.data(),
                          images.data.size() * 4};
      vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, outShape, logits.data(),
                           logits.size() * 4};
      vmoe_message_t msg;
      ASSERT_EQ(vmoe_session_run(m.session, &in, 1, &out, 1, nullptr, &msg),
                VMOE_STATUS_OK)
          << msg.text;
      allLogits.push_back(logits);
    }
  ASSERT_EQ(allLogits.size(), 6u);
  for (size_t i = 1; i < allLogits.size(); ++i)
    EXPECT_EQ(allLogits[0], allLogits[i]) << i;
}

TEST(EndToEndImport, MisshapenWeightIsNamed) {
  ::vmoe::readers::ModelConfig config;
  std::string error;
  ASSERT_TRUE(
      ::vmoe::readers::readModelConfig(VMOE_E2E_IMPORT_CONFIG, config, &error));
  WeightMap weights;
  ASSERT_TRUE(::vmoe::readers::readWeights(
      std::string(VMOE_E2E_IMPORT_WEIGHTS) + ".npz", weights, &error));
  weights["Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel"].shape = {4, 32, 16};
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  EXPECT_FALSE(buildVitMoe(context, config, weights, &error));
  EXPECT_EQ(error, "weight Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel has "
                   "shape (4, 32, 16), the config needs (4, 16, 32)");
  weights.erase("Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel");
  EXPECT_FALSE(buildVitMoe(context, config, weights, &error));
  EXPECT_EQ(error, "missing weight Encoder/encoderblock_1/Moe/Mlp/Dense_0/"
                   "kernel of shape (4, 16, 32)");
  // vmoe issue #182: a group that does not fit the batch is named.
  config.batchSize = 3;
  EXPECT_FALSE(buildVitMoe(context, config, weights, &error));
  EXPECT_EQ(error, "group_size 34 does not divide the 51 tokens of a batch of "
                   "3 (vmoe issue #182); choose a divisor, e.g. the tokens per "
                   "image 17");
}

} // namespace

namespace {

// The bundled model (models/fashion-mnist, trained with
// scripts/train_fashion_mnist.py) against the golden logits its PyTorch
// implementation (python/vmoe_torch.py) wrote for the bundled samples:
// the default capacity factor, and 0.5 with BPR on and off.
TEST(BundledModel, MatchesPyTorchGoldenLogits) {
  ::vmoe::readers::ModelConfig config;
  WeightMap weights, samples;
  std::string error;
  ASSERT_TRUE(vmoe::e2e::loadBundledModel(config, weights, &samples, &error))
      << error;
  config.batchSize = 8;
  config.maxCapacityFactor = 2.0;
  const WeightTensor &inputs = samples.at("inputs");
  int64_t n = inputs.shape[0];
  ASSERT_EQ(n % config.batchSize, 0);

  Module m;
  ref::ModelWeights unused;
  compileWeights(config, weights, m, unused);
  if (HasFatalFailure())
    return;
  struct Case {
    const char *golden;
    double cf;
    int bpr;
  };
  for (Case c : {Case{"logits", 0.0, -1}, Case{"logits_cf0_5_bpr", 0.5, 1},
                 Case{"logits_cf0_5_vanilla", 0.5, 0}}) {
    SCOPED_TRACE(c.golden);
    const WeightTensor &golden = samples.at(c.golden);
    int64_t classes = golden.shape[1];
    int64_t item = inputs.data.size() / n;
    std::vector<float> logits(config.batchSize * classes);
    double maxDiff = 0;
    int64_t sameTop1 = 0;
    for (int64_t b = 0; b < n; b += config.batchSize) {
      int64_t inShape[4] = {config.batchSize, config.imageHeight,
                            config.imageWidth, config.channels};
      int64_t outShape[2] = {config.batchSize, classes};
      vmoe_tensor_t in = {VMOE_DTYPE_F32, 4, inShape,
                          const_cast<float *>(inputs.data.data()) + b * item,
                          static_cast<uint64_t>(config.batchSize * item * 4)};
      vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, outShape, logits.data(),
                           logits.size() * 4};
      vmoe_run_options_t ropts = {c.cf, c.bpr};
      vmoe_message_t msg;
      ASSERT_EQ(vmoe_session_run(m.session, &in, 1, &out, 1, &ropts, &msg),
                VMOE_STATUS_OK)
          << msg.text;
      for (int64_t i = 0; i < config.batchSize; ++i) {
        const float *want = golden.data.data() + (b + i) * classes;
        const float *got = logits.data() + i * classes;
        for (int64_t k = 0; k < classes; ++k)
          maxDiff = std::max(maxDiff, std::abs(double(got[k]) - want[k]));
        sameTop1 += std::max_element(got, got + classes) - got ==
                    std::max_element(want, want + classes) - want;
      }
    }
    // Two float32 implementations of the same math; bf16 rounding of expert
    // inputs can flip near a tie, which moves a logit by ~1e-3 at most here.
    EXPECT_LT(maxDiff, 2e-3);
    EXPECT_EQ(sameTop1, n);
  }
}

} // namespace
