//===- ModelVariantsTest.cpp - sincos2d, the MAP head, classifier '0' -----===//
//
// vmoe's other position embeddings and heads, compiled through the whole
// compiler and run with the runtime against the reference evaluator:
// sincos2d position embeddings (also on a non-square grid, so rows and
// columns cannot swap unnoticed), the MAP head (classifier 'map'), the
// first-token classifier ('0') without position embeddings, and the
// expert-choice router and an explicit capacity as configs give them, at
// the compiled batch and a smaller one.
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "ReferenceWeights.h"

#include "vmoe/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace {

using namespace mlir::vmoe;
using Tensor = vmoe::reference::Tensor;
namespace ref = vmoe::reference;

struct Session {
  vmoe_module_t *module = nullptr;
  vmoe_session_t *session = nullptr;
  ~Session() {
    vmoe_session_destroy(session);
    vmoe_module_release(module);
  }
};

/// Compiles `config` for the tests' target (setE2eTarget) and opens a
/// session.
void compile(const VitMoeConfig &config, const WeightMap &weights,
             Session &out) {
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  std::string error;
  auto module = buildVitMoe(context, config, weights, &error);
  ASSERT_TRUE(module) << error;
  // The model names its weights (vmoe.parameter): served from memory.
  auto source = ::vmoe::readers::tensorMapSource(weights);
  CompileOptions options;
  options.parameters = source.get();
  options.cpu = "host";
  bool onGpu = vmoe::e2e::setE2eTarget(options);
  options.modelName = config.name;
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(mlir::succeeded(compileToModule(*module, options, bytes, &error)))
      << error;
  vmoe::e2e::openSession(bytes, onGpu, &out.module, &out.session);
}

Tensor randomImages(const VitMoeConfig &c, int64_t batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor images({batch, c.imageHeight, c.imageWidth, c.channels});
  for (float &v : images.data)
    v = dist(rng);
  return images;
}

/// Runs `images` through the module and the reference at capacity factor
/// `cf`; returns the largest logit difference.
double maxLogitDiff(const VitMoeConfig &c, Session &s,
                    const ref::ModelWeights &weights, const Tensor &images,
                    double cf) {
  ref::ModelConfig refConfig;
  vmoe::e2e::referenceModelParts(c, refConfig);
  refConfig.moe.groupSize = c.groupSize > 0 ? c.groupSize : c.tokensPerImage();
  refConfig.moe.numSelectedExperts = c.numSelectedExperts;
  refConfig.moe.capacityFactor = cf;
  if (c.capacity > 0) { // fixed: no capacity factor in the call either
    refConfig.moe.capacity = c.capacity;
    refConfig.moe.capacityFactor.reset();
    cf = 0.0;
  }
  if (c.expertChoice)
    refConfig.moe.routing = ref::RoutingKind::ExpertChoice;
  refConfig.moe.batchPriority = c.batchPriority && !c.expertChoice;
  refConfig.moe.bf16Dispatch = c.bf16Dispatch;
  auto expected = ref::visionTransformerMoe(images, weights, refConfig);
  EXPECT_TRUE(expected.ok()) << expected.error();
  if (!expected.ok())
    return INFINITY;
  int64_t batch = images.dim(0);
  std::vector<float> logits(batch * c.numClasses);
  int64_t inShape[4] = {batch, c.imageHeight, c.imageWidth, c.channels};
  int64_t outShape[2] = {batch, c.numClasses};
  vmoe_tensor_t in = {VMOE_DTYPE_F32, 4, inShape,
                      const_cast<float *>(images.data.data()),
                      images.data.size() * 4};
  vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, outShape, logits.data(),
                       logits.size() * 4};
  vmoe_run_options_t ropts;
  vmoe_run_options_init(&ropts);
  ropts.capacity_factor = cf; // BPR: the module's (the config's)
  vmoe_message_t msg;
  EXPECT_EQ(vmoe_session_run(s.session, &in, 1, &out, 1, &ropts, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    diff = std::max(
        diff, std::abs(double(logits[i]) - double(expected->logits.data[i])));
    scale = std::max(scale, std::abs(double(expected->logits.data[i])));
  }
  // Logits of order 1: a missing or wrong layer moves them by far more.
  EXPECT_GT(scale, 0.05);
  return diff;
}

/// A small ViT-MoE without bf16 dispatch: f32 kernels against the
/// double-accumulating reference agree to about 1e-6 here (CPU and the CUDA
/// kernels emulated); 1e-5 is the stated tolerance (1e-4 on a GPU, whose
/// exp and contracted multiply-adds round differently; not measured here).
VitMoeConfig variantConfig(const std::string &name) {
  VitMoeConfig c = vmoe::e2e::smallVitMoe(name);
  c.bf16Dispatch = false;
  c.batchSize = 3;
  return c;
}

double tolerance() {
  const char *device = std::getenv("VMOE_E2E_DEVICE");
  return device && std::strcmp(device, "cuda") == 0 ? 1e-4 : 1e-5;
}

void checkVariant(const VitMoeConfig &c, uint64_t seed) {
  WeightMap weights = randomWeights(c, seed);
  Session s;
  compile(c, weights, s);
  if (::testing::Test::HasFatalFailure())
    return;
  ref::ModelWeights refWeights = vmoe::e2e::toReference(c, weights);
  double limit = tolerance();
  Tensor images = randomImages(c, c.batchSize, seed + 1);
  double worst = 0.0;
  for (double cf : {2.0, 0.5}) {
    double diff = maxLogitDiff(c, s, refWeights, images, cf);
    EXPECT_LT(diff, limit) << "capacity factor " << cf;
    worst = std::max(worst, diff);
  }
  // A smaller batch than compiled.
  Tensor one = randomImages(c, 1, seed + 2);
  double diff = maxLogitDiff(c, s, refWeights, one, 2.0);
  EXPECT_LT(diff, limit) << "batch 1";
  worst = std::max(worst, diff);
  ::testing::Test::RecordProperty("max_logit_diff", std::to_string(worst));
  std::printf("%s: max |logit - reference| = %.3g\n", c.name.c_str(), worst);
}

TEST(ModelVariants, Sincos2dPositionEmbedding) {
  VitMoeConfig c = variantConfig("sincos");
  c.positionEmbedding = "sincos2d";
  c.imageWidth = 20; // a 4 x 5 grid
  checkVariant(c, 21);
}

TEST(ModelVariants, Sincos2dWithTemperature) {
  VitMoeConfig c = variantConfig("sincos_t");
  c.positionEmbedding = "sincos2d";
  c.sincosTemperature = 100.0;
  c.classifier = "gap";
  checkVariant(c, 23);
}

TEST(ModelVariants, MapHead) {
  VitMoeConfig c = variantConfig("map");
  c.classifier = "map";
  c.imageHeight = 20; // a 5 x 4 grid, 20 tokens (no class token)
  c.representationSize = 12;
  checkVariant(c, 25);
}

TEST(ModelVariants, MapHeadWithSincos2d) {
  // vmoe's usual pairing (e.g. the soft_moe projects' configs).
  VitMoeConfig c = variantConfig("map_sincos");
  c.classifier = "map";
  c.positionEmbedding = "sincos2d";
  c.hiddenSize = 24; // 3 heads of 8; not a multiple of the vector width
  c.numHeads = 3;
  c.mlpDim = 40;
  checkVariant(c, 27);
}

TEST(ModelVariants, FirstTokenWithoutPositionEmbedding) {
  VitMoeConfig c = variantConfig("first");
  c.classifier = "0";
  c.positionEmbedding = "none";
  checkVariant(c, 29);
}

TEST(ModelVariants, ExpertChoiceRouterFromTheConfig) {
  // vmoe's NoisyTopItemsPerExpertRouter as a config gives it: each expert
  // takes its C best tokens of the group; C from the per-call factor.
  VitMoeConfig c = variantConfig("expert_choice");
  c.expertChoice = true;
  c.numSelectedExperts = 1;
  checkVariant(c, 31);
}

TEST(ModelVariants, ExplicitCapacityFromTheConfig) {
  // dispatcher.capacity: every call uses it (small enough to drop
  // assignments, so a wrong capacity changes the logits), BPR on.
  VitMoeConfig c = variantConfig("fixed_capacity");
  c.capacity = 2;
  c.batchPriority = true;
  checkVariant(c, 33);
}

TEST(ModelVariants, WeightNamesFollowVmoe) {
  VitMoeConfig c = variantConfig("names");
  c.classifier = "map";
  c.positionEmbedding = "sincos2d";
  auto shapes = expectedShapes(c);
  EXPECT_EQ(shapes.count("Encoder/posembed_input/pos_embedding"), 0u);
  EXPECT_EQ(shapes.count("cls"), 0u);
  EXPECT_EQ(shapes.at("MapHead/probe"), (std::vector<int64_t>{1, 1, 32}));
  EXPECT_EQ(shapes.at("MapHead/MultiHeadDotProductAttention/query/kernel"),
            (std::vector<int64_t>{32, 4, 8}));
  EXPECT_EQ(shapes.at("MapHead/MultiHeadDotProductAttention/out/kernel"),
            (std::vector<int64_t>{4, 8, 32}));
  EXPECT_EQ(shapes.at("MapHead/LayerNorm/scale"), (std::vector<int64_t>{32}));
  EXPECT_EQ(shapes.at("MapHead/Mlp/Dense_0/kernel"),
            (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(shapes.at("MapHead/Mlp/Dense_1/bias"), (std::vector<int64_t>{32}));
  // A learned table where the config says sincos2d is refused by name.
  WeightMap weights = randomWeights(c, 1);
  weights["Encoder/posembed_input/pos_embedding"] = {{1, 16, 32},
                                                     std::vector<float>(512)};
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  std::string error;
  EXPECT_FALSE(buildVitMoe(context, c, weights, &error));
  EXPECT_NE(error.find("unexpected weight "
                       "Encoder/posembed_input/pos_embedding"),
            std::string::npos)
      << error;
}

} // namespace
