//===- ModelConfigVmoeTest.cpp - whole vmoe configs, image size, overrides ===//

#include "TestUtil.h"

#include "vmoe/readers/ModelConfig.h"

namespace vmoe::readers::test {
namespace {

std::string example(const char *name) {
  Bytes bytes = readFile(std::string(VMOE_SOURCE_DIR) + "/examples/" + name);
  return std::string(bytes.begin(), bytes.end());
}

bool parse(const std::string &text, ModelConfig &out, std::string &error,
           const ConfigReadOptions &options = {}) {
  return parseModelConfig(text, "config.json", out, &error, options);
}

/// A vmoe model config (the S/32 one of vmoe_s32_last2_ilsvrc2012_randaug_
/// light1) inside a whole config with `rest` beside it.
std::string wholeConfig(const std::string &rest) {
  return R"({"seed": 0, "model": {"name": "VisionTransformerMoe",
    "num_classes": 1000, "patch_size": [32, 32], "hidden_size": 512,
    "classifier": "token", "representation_size": 512,
    "head_bias_init": -6.9, "encoder": {"num_layers": 8, "mlp_dim": 2048,
      "num_heads": 8, "dropout_rate": 0.0, "attention_dropout_rate": 0.0,
      "moe": {"num_experts": 8, "layers": [5, 7], "dropout_rate": 0.2,
        "split_rngs": false, "group_size": 400, "router": {
          "num_selected_experts": 2, "noise_std": 1.0,
          "importance_loss_weight": 0.005, "load_loss_weight": 0.005,
          "dispatcher": {"name": "einsum", "bfloat16": true,
            "capacity_factor": 1.05, "partition_spec": [["expert",
            "replica"]], "batch_priority": false}}}}},
    "optimizer": {"name": "adam", "b1": 0.9}, "mixup": {"size": 2})" +
         rest + "}";
}

const char *kS32Datasets = R"j(, "dataset": {
    "train": {"process": "decode_jpeg_and_inception_crop(224)|flip_lr|randaug(2, 10)|value_range(-1,1)"},
    "val": {"process": "decode|resize_small(256)|central_crop(224)|value_range(-1,1)|onehot(1000, inkey=\"label\", outkey=\"labels\")"},
    "test": {"process": "decode|resize_small(256)|central_crop((224, 224))|value_range(-1,1)"}})j";

TEST(VmoeConfig, ReadsTheReleasedB16FineTuneConfig) {
  // examples/: vmoe's configs/vmoe_paper/vmoe_b16_imagenet21k_randaug_
  // strong_ft_ilsvrc2012.py as ml_collections dumps it (to_json).
  std::string text =
      example("vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012.json");
  ASSERT_FALSE(text.empty());
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(parse(text, c, error)) << error;
  // The image size from the evaluation datasets' decode|resize(384).
  EXPECT_EQ(c.imageHeight, 384);
  EXPECT_EQ(c.imageWidth, 384);
  EXPECT_EQ(c.tokensPerImage(), 577);
  EXPECT_EQ(c.groupSize, 4616);
  EXPECT_EQ(c.hiddenSize, 768);
  EXPECT_EQ(c.numLayers, 12);
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(c.numExperts, 8);
  EXPECT_EQ(c.numSelectedExperts, 2);
  EXPECT_EQ(c.capacityFactor, 1.5);
  EXPECT_FALSE(c.representationSize.has_value());
  EXPECT_EQ(c.numClasses, 1000);
  EXPECT_EQ(c.positionEmbedding, "learned");
}

TEST(VmoeConfig, EvaluationOverridesAndCropSize) {
  // vmoe_s32_last2_ilsvrc2012_randaug_light1 evaluates at capacity factor
  // 4.0 (evaluate.model_overrides) on central_crop(224).
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(parse(wholeConfig(std::string(kS32Datasets) +
                                R"(, "evaluate": {"every_steps": 1000,
      "model_overrides": {"encoder": {"moe": {"router": {"dispatcher":
      {"capacity_factor": 4.0}}}}}})"),
                    c, error))
      << error;
  EXPECT_EQ(c.capacityFactor, 4.0);
  EXPECT_EQ(c.imageHeight, 224);
  EXPECT_EQ(c.tokensPerImage(), 50);
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(c.representationSize, 512);
  // Without overrides, the model's own capacity factor.
  ASSERT_TRUE(parse(wholeConfig(kS32Datasets), c, error)) << error;
  EXPECT_EQ(c.capacityFactor, 1.05);
}

TEST(VmoeConfig, ImageSizeSources) {
  ModelConfig c;
  std::string error;
  // --image-size wins over the datasets and "image_size".
  ConfigReadOptions options;
  options.imageHeight = 384;
  options.imageWidth = 256;
  ASSERT_TRUE(parse(wholeConfig(kS32Datasets), c, error, options)) << error;
  EXPECT_EQ(c.imageHeight, 384);
  EXPECT_EQ(c.imageWidth, 256);
  ASSERT_TRUE(parse(wholeConfig(R"(, "image_size": 160)"), c, error)) << error;
  EXPECT_EQ(c.imageHeight, 160);
  // Only a training dataset: its size.
  ASSERT_TRUE(parse(wholeConfig(R"(, "dataset": {"train": {"process":
      "decode_jpeg_and_inception_crop(128)|flip_lr"}})"),
                    c, error))
      << error;
  EXPECT_EQ(c.imageHeight, 128);
  // Sizes as a list, a keyword, a crop after a resize.
  for (auto [process, h, w] :
       {std::tuple<const char *, int64_t, int64_t>{"resize([320, 256])", 320,
                                                   256},
        {"resize(resize_size=96)", 96, 96},
        {"decode|resize(512)|central_crop(448)|value_range(-1,1)", 448, 448},
        {"inception_crop(64, area_min=50)", 64, 64}}) {
    ASSERT_TRUE(parse(wholeConfig(std::string(R"(, "dataset": {"test":
        {"process": ")") + process +
                                  "\"}}"),
                      c, error))
        << process << ": " << error;
    EXPECT_EQ(c.imageHeight, h) << process;
    EXPECT_EQ(c.imageWidth, w) << process;
  }
}

TEST(VmoeConfig, ImageSizeErrors) {
  struct Case {
    std::string rest;
    const char *message;
  };
  for (
      const Case &k : std::vector<Case>{
          {"", "the image size is not known: vmoe's model config has none "
               "(its input pipeline sets it) and this config has no "
               "\"dataset\"; pass it (vmoe-compile --image-size=N or HxW)"},
          {R"j(, "dataset": {"test": {"process": "decode|resize_small(256)"}})j",
           "no \"process\" of its \"dataset\" entries ends with a fixed size"},
          {R"j(, "dataset": {"test": {"process": "resize(384)"},
                "v2": {"process": "decode|resize(224)"}})j",
           "the evaluation datasets disagree on the image size: "
           "'dataset.test' gives 384x384, 'dataset.v2' 224x224"},
          {R"(, "evaluate": {"model_overrides": 3}, "image_size": 224)",
           "field 'evaluate.model_overrides': expected an object, got a "
           "number"},
          {R"(, "evaluate": {"model_overrides": {"encoder": {"moe":
                {"num_expert": 2}}}}, "image_size": 224)",
           "unknown field 'evaluate.model_overrides.encoder.moe.num_expert'"},
      }) {
    ModelConfig c;
    std::string error;
    EXPECT_FAILS_WITH(parse(wholeConfig(k.rest), c, error), error, k.message);
  }
  // A dense model without a size, outside a whole config, too.
  ModelConfig c;
  std::string error;
  EXPECT_FAILS_WITH(
      parse(R"({"patch_size": 32, "hidden_size": 64, "num_classes": 10,
          "encoder": {"num_layers": 1, "mlp_dim": 8, "num_heads": 2}})",
            c, error),
      error, "the image size is not known");
  EXPECT_FAILS_WITH(parse(R"({"model": 3, "dataset": {}})", c, error), error,
                    "field 'model': expected an object, got a number");
  int64_t h = 0, w = 0;
  EXPECT_TRUE(parseImageSize("384", h, w, &error));
  EXPECT_EQ(h, 384);
  EXPECT_TRUE(parseImageSize("384x256", h, w, &error));
  EXPECT_EQ(w, 256);
  for (const char *bad : {"", "0", "384x", "x384", "-3", "3.5", "99999999"})
    EXPECT_FAILS_WITH(parseImageSize(bad, h, w, &error), error,
                      "is not N or HxW");
}

TEST(VmoeConfig, PositionEmbeddingsAndHeads) {
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(parse(R"({"patch_size": 4, "hidden_size": 16, "image_size": 16,
      "num_classes": 3, "classifier": "map", "encoder": {"num_layers": 1,
      "mlp_dim": 8, "num_heads": 2, "attention_qk_norm": false,
      "position_emb": {"name": "sincos2d", "temperature": 100.0}}})",
                    c, error))
      << error;
  EXPECT_EQ(c.classifier, "map");
  EXPECT_EQ(c.positionEmbedding, "sincos2d");
  EXPECT_EQ(c.sincosTemperature, 100.0);
  EXPECT_EQ(c.tokensPerImage(), 16); // no cls token
  ASSERT_TRUE(parse(R"({"patch_size": 4, "hidden_size": 16, "image_size": 16,
      "num_classes": 3, "classifier": "0", "encoder": {"num_layers": 1,
      "mlp_dim": 8, "num_heads": 2, "position_emb": {"name": "none"}}})",
                    c, error))
      << error;
  EXPECT_EQ(c.tokensPerImage(), 16);
  EXPECT_EQ(c.positionEmbedding, "none");
  EXPECT_FAILS_WITH(
      parse(R"({"patch_size": 4, "hidden_size": 18, "image_size": 16,
          "num_classes": 3, "encoder": {"num_layers": 1, "mlp_dim": 8,
          "num_heads": 2, "position_emb": {"name": "sincos2d"}}})",
            c, error),
      error, "need a hidden_size that is a multiple of 4 and at least 8");
}

TEST(VmoeConfig, EmittedJsonReadsBackTheSame) {
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(presetConfig("vmoe-s32-e8-last2", c, &error)) << error;
  c.classifier = "map";
  c.positionEmbedding = "sincos2d";
  c.sincosTemperature = 1000.0;
  c.maxCapacityFactor = 2.0;
  c.classNames.assign(1000, "x");
  std::string json = modelConfigToJson(c);
  // vmoe's layout: the encoder fields under "encoder".
  EXPECT_NE(json.find("\"encoder\": {\"num_layers\": 8, \"mlp_dim\": 2048, "
                      "\"num_heads\": 8, \"position_emb\": {\"name\": "
                      "\"sincos2d\", \"temperature\": 1000.0}, \"moe\": "
                      "{\"layers\": [5, 7], \"num_experts\": 8, "
                      "\"group_size\": 400"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find("transformer"), std::string::npos) << json;
  ModelConfig back;
  ASSERT_TRUE(parse(json, back, error)) << error;
  EXPECT_EQ(modelConfigToJson(back), json);
  EXPECT_EQ(back.classifier, "map");
  EXPECT_EQ(back.sincosTemperature, 1000.0);
  EXPECT_EQ(back.groupSize, 400);
}

TEST(VmoeConfig, OverridesWarnWhenTheRoutingGroupChanges) {
  ModelConfig base;
  std::string error;
  ASSERT_TRUE(parse(example("vmoe_b16_imagenet21k_randaug_strong_ft_"
                            "ilsvrc2012.json"),
                    base, error))
      << error;
  // No override: one group of 8 images, no warning.
  ModelConfig c = base;
  std::vector<std::string> warnings;
  applyOverrides(c, {}, warnings);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(c.batchSize, 8);
  EXPECT_EQ(c.groupSize, 4616);
  // --batch 1 (vmoe issue #182): one image per group, with a warning.
  c = base;
  ConfigOverrides batch1;
  batch1.batchSize = 1;
  applyOverrides(c, batch1, warnings);
  EXPECT_EQ(c.groupSize, 577);
  EXPECT_EQ(c.batchSize, 1);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("--batch 1 changes the routing group: the "
                             "config's group of 4616 tokens, 8 images does "
                             "not fit a batch of 1"),
            std::string::npos)
      << warnings[0];
  // --batch 16 keeps the config's groups: no warning.
  c = base;
  warnings.clear();
  ConfigOverrides batch16;
  batch16.batchSize = 16;
  applyOverrides(c, batch16, warnings);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(c.groupSize, 4616);
  // --group-size: a warning naming both.
  c = base;
  ConfigOverrides group;
  group.groupSize = 1154;
  group.capacityFactor = 0.5;
  group.batchPriority = true;
  applyOverrides(c, group, warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("--group-size 1154 changes the routing group "
                             "from the config's 4616 tokens, 8 images to "
                             "1154 tokens, 2 images"),
            std::string::npos)
      << warnings[0];
  EXPECT_EQ(c.capacityFactor, 0.5);
  EXPECT_TRUE(c.batchPriority);
}

/// wholeConfig's S/32 model with its router's fields replaced by `router`.
std::string withRouter(const std::string &router) {
  std::string text = wholeConfig(kS32Datasets);
  size_t a = text.find("\"router\": {");
  size_t b = text.find("\"batch_priority\": false}}", a);
  return text.substr(0, a) + "\"router\": {" + router + "}" +
         text.substr(b + std::string("\"batch_priority\": false}}").size());
}

TEST(VmoeConfig, ExpertChoiceRouterAndExplicitCapacity) {
  ModelConfig c;
  std::string error;
  // vmoe's expert-choice router: no k (1 for the compiler), its capacity
  // from the factor over the group's tokens.
  ASSERT_TRUE(parse(withRouter(R"("name": "NoisyTopItemsPerExpertRouter",
      "noise_std": 1.0, "dispatcher": {"name": "einsum", "bfloat16": true,
      "capacity_factor": 2.0, "batch_priority": false})"),
                    c, error))
      << error;
  EXPECT_TRUE(c.expertChoice);
  EXPECT_EQ(c.numSelectedExperts, 1);
  EXPECT_EQ(c.capacityFactor, 2.0);
  EXPECT_EQ(c.capacity, 0);
  // dispatcher.capacity: a fixed capacity.
  ASSERT_TRUE(parse(withRouter(R"("num_selected_experts": 2,
      "dispatcher": {"capacity": 96, "batch_priority": true})"),
                    c, error))
      << error;
  EXPECT_FALSE(c.expertChoice);
  EXPECT_EQ(c.capacity, 96);
  EXPECT_EQ(c.numSelectedExperts, 2);
  // Both written out and read back the same.
  for (bool expertChoice : {false, true}) {
    ModelConfig w = c;
    w.expertChoice = expertChoice;
    w.numSelectedExperts = expertChoice ? 1 : 2;
    std::string json = modelConfigToJson(w);
    ModelConfig back;
    ASSERT_TRUE(parse(json, back, error)) << error << "\n" << json;
    EXPECT_EQ(modelConfigToJson(back), json);
    EXPECT_EQ(back.expertChoice, expertChoice);
    EXPECT_EQ(back.capacity, 96);
  }
  // What vmoe refuses.
  EXPECT_FALSE(parse(withRouter(R"("dispatcher": {"capacity": 96,
      "capacity_factor": 1.0})"),
                     c, error));
  EXPECT_NE(error.find("sets both capacity and capacity_factor"),
            std::string::npos)
      << error;
  EXPECT_FALSE(parse(withRouter(R"("name": "NoisyTopItemsPerExpertRouter",
      "num_selected_experts": 2, "dispatcher": {"capacity_factor": 1.0})"),
                     c, error));
  EXPECT_NE(error.find("not a field of NoisyTopItemsPerExpertRouter"),
            std::string::npos)
      << error;
  EXPECT_FALSE(parse(withRouter(R"("name": "SoftRouter")"), c, error));
  EXPECT_NE(error.find("router 'SoftRouter' is not supported"),
            std::string::npos)
      << error;
  EXPECT_FALSE(parse(withRouter(R"("dispatcher": {"capacity": 0})"), c, error));
  // --capacity-factor over a fixed capacity: the factor's rule, warned.
  ASSERT_TRUE(parse(withRouter(R"("dispatcher": {"capacity": 96})"), c, error))
      << error;
  ConfigOverrides cf;
  cf.capacityFactor = 0.5;
  std::vector<std::string> warnings;
  applyOverrides(c, cf, warnings);
  EXPECT_EQ(c.capacity, 0);
  EXPECT_EQ(c.capacityFactor, 0.5);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("replaces the config's fixed capacity"),
            std::string::npos)
      << warnings[0];
}

} // namespace
} // namespace vmoe::readers::test
