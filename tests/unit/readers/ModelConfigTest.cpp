//===- ModelConfigTest.cpp - config JSON and presets ----------------------===//

#include "TestUtil.h"

#include "vmoe/readers/ModelConfig.h"

#include <cmath>

namespace vmoe::readers::test {
namespace {

bool parse(const std::string &text, ModelConfig &out, std::string &error) {
  return parseModelConfig(text, "config.json", out, &error);
}

// vmoe's configs/vmoe_paper/vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012
// model config (common.get_vmoe_config + overrides) as JSON, with the
// training-only fields it carries, plus our inference fields.
const char *kFullVmoe = R"({
  "name": "VisionTransformerMoe",
  "num_classes": 1000,
  "patch_size": [16, 16],
  "hidden_size": 768,
  "classifier": "token",
  "representation_size": null,
  "head_bias_init": -6.907755278982137,
  "encoder": {
    "num_layers": 12,
    "mlp_dim": 3072,
    "num_heads": 12,
    "dropout_rate": 0.0,
    "attention_dropout_rate": 0.0,
    "moe": {
      "num_experts": 8,
      "layers": [1, 3, 5, 7, 9, 11],
      "dropout_rate": 0.0,
      "split_rngs": false,
      "group_size": 4616,
      "router": {
        "num_selected_experts": 2,
        "noise_std": 1.0,
        "importance_loss_weight": 0.005,
        "load_loss_weight": 0.005,
        "dispatcher": {
          "name": "einsum",
          "bfloat16": true,
          "capacity_factor": 1.5,
          "partition_spec": [["expert", "replica"]],
          "batch_priority": false
        }
      }
    }
  },
  "image_size": 384,
  "batch_size": 8,
  "max_capacity_factor": 2.0,
  "class_names": ["tench"]
})";

TEST(ModelConfig, ReadsVmoeNestedForm) {
  std::string text = kFullVmoe;
  // 1000 class names.
  std::string names = "[";
  for (int i = 0; i < 1000; ++i)
    names += (i ? ",\"c" : "\"c") + std::to_string(i) + "\"";
  names += "]";
  text.replace(text.find("[\"tench\"]"), 9, names);
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(parse(text, c, error)) << error;
  EXPECT_EQ(c.name, "VisionTransformerMoe");
  EXPECT_EQ(c.imageHeight, 384);
  EXPECT_EQ(c.imageWidth, 384);
  EXPECT_EQ(c.channels, 3);
  EXPECT_EQ(c.patchSize, 16);
  EXPECT_EQ(c.hiddenSize, 768);
  EXPECT_EQ(c.numLayers, 12);
  EXPECT_EQ(c.mlpDim, 3072);
  EXPECT_EQ(c.numHeads, 12);
  EXPECT_EQ(c.classifier, "token");
  EXPECT_FALSE(c.representationSize.has_value());
  EXPECT_EQ(c.numClasses, 1000);
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(c.numExperts, 8);
  EXPECT_EQ(c.numSelectedExperts, 2);
  EXPECT_EQ(c.groupSize, 4616); // 8 x 577 tokens
  EXPECT_EQ(c.tokensPerImage(), 577);
  EXPECT_EQ(c.capacityFactor, 1.5);
  EXPECT_EQ(c.maxCapacityFactor, 2.0);
  EXPECT_FALSE(c.batchPriority);
  EXPECT_TRUE(c.bf16Dispatch);
  EXPECT_EQ(c.batchSize, 8);
  ASSERT_EQ(c.classNames.size(), 1000u);
  EXPECT_EQ(c.classNames[999], "c999");
}

TEST(ModelConfig, ReadsGeneratedTinyConfig) {
  REQUIRE_TEST_DATA();
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(readModelConfig(dataPath("tiny_config.json"), c, &error))
      << error;
  EXPECT_EQ(c.name, "tiny_vmoe");
  EXPECT_EQ(c.patchSize, 4);
  EXPECT_EQ(c.tokensPerImage(), 5);
  EXPECT_EQ(c.representationSize, 6);
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(c.groupSize, 10);
  EXPECT_FALSE(c.bf16Dispatch);
}

TEST(ModelConfig, MinimalDenseConfig) {
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(parse(R"({"patch_size": 32, "hidden_size": 512, "image_size": 224,
                        "num_classes": 10,
                        "transformer": {"num_layers": 8, "mlp_dim": 2048,
                                        "num_heads": 8}})",
                    c, error))
      << error;
  EXPECT_EQ(c.name, "vmoe");
  EXPECT_EQ(c.imageHeight, 224);
  EXPECT_EQ(c.patchSize, 32);
  EXPECT_EQ(c.numLayers, 8);
  EXPECT_TRUE(c.moeLayers.empty());
  EXPECT_EQ(c.classifier, "token");
  EXPECT_EQ(c.batchSize, 1);
  EXPECT_EQ(c.tokensPerImage(), 50);
}

TEST(ModelConfig, FlatDottedAndWrappedForms) {
  ModelConfig flat, dotted, wrapped;
  std::string error;
  ASSERT_TRUE(parse(R"({"image_size": [64, 32], "patches": {"size": [8, 8]},
      "hidden_size": 16, "num_classes": 3, "classifier": "gap",
      "representation_size": 4, "num_layers": 2, "mlp_dim": 32,
      "num_heads": 4, "moe_layers": [1], "num_experts": 4, "group_size": null,
      "num_selected_experts": 1, "capacity_factor": 2, "batch_priority": true,
      "bfloat16": false, "num_channels": 1})",
                    flat, error))
      << error;
  EXPECT_EQ(flat.imageHeight, 64);
  EXPECT_EQ(flat.imageWidth, 32);
  EXPECT_EQ(flat.patchSize, 8);
  EXPECT_EQ(flat.tokensPerImage(), 32);
  EXPECT_EQ(flat.representationSize, 4);
  EXPECT_EQ(flat.moeLayers, std::vector<int64_t>{1});
  EXPECT_EQ(flat.groupSize, 0);
  EXPECT_EQ(flat.numSelectedExperts, 1);
  EXPECT_EQ(flat.capacityFactor, 2.0);
  EXPECT_TRUE(flat.batchPriority);
  EXPECT_FALSE(flat.bf16Dispatch);
  EXPECT_EQ(flat.channels, 1);
  // vmoe's common.flatten_dict keys.
  ASSERT_TRUE(parse(R"({"patch_size": [8, 8], "hidden_size": 16,
      "image_size": 16, "num_classes": 3, "encoder.num_layers": 2, "encoder.mlp_dim": 32,
      "encoder.num_heads": 4, "encoder.moe.layers": [0, 1],
      "encoder.moe.num_experts": 2,
      "encoder.moe.router.dispatcher.capacity_factor": 1.25})",
                    dotted, error))
      << error;
  EXPECT_EQ(dotted.moeLayers, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(dotted.capacityFactor, 1.25);
  // {"model": {...}} with "moe" at the model's top level.
  ASSERT_TRUE(parse(R"({"model": {"patch_size": 8, "hidden_size": 16,
      "num_classes": 3, "transformer": {"num_layers": 2, "mlp_dim": 32,
      "num_heads": 4}, "moe": {"layers": [1], "num_experts": 2,
      "router": {"name": "NoisyTopExpertsPerItemRouter"}}},
      "batch_size": 4, "image_size": [16, 24]})",
                    wrapped, error))
      << error;
  EXPECT_EQ(wrapped.moeLayers, std::vector<int64_t>{1});
  EXPECT_EQ(wrapped.batchSize, 4);
  EXPECT_EQ(wrapped.imageWidth, 24);
}

TEST(ModelConfig, ErrorsNameTheField) {
  std::string base = R"("patch_size": 16, "hidden_size": 64, "num_classes": 10,
      "encoder": {"num_layers": 4, "mlp_dim": 128, "num_heads": 4)";
  auto with = [&](const std::string &encoderExtra, const std::string &extra) {
    std::string size = extra.find("image_size") == std::string::npos
                           ? ", \"image_size\": 224"
                           : "";
    return "{" + base + encoderExtra + "}" + extra + size + "}";
  };
  struct Case {
    std::string text;
    const char *message;
  };
  std::vector<Case> cases = {
      {with("", ", \"foo\": 1"), "unknown field 'foo'"},
      {with(", \"foo\": {}", ""), "unknown field 'encoder.foo'"},
      {with(", \"moe\": {\"layers\": [1], \"num_experts\": 4, "
            "\"capacity\": 3}",
            ""),
       "unknown field 'encoder.moe.capacity'"},
      {with("", ", \"num_classes\": 5"), "duplicate key 'num_classes'"},
      {with("", ", \"num_layers\": 4"),
       "field 'encoder.num_layers' is given twice (as 'encoder.num_layers' "
       "and 'num_layers')"},
      {with("", ", \"batch_size\": \"8\""),
       "field 'batch_size': expected an integer, got a string"},
      {with("", ", \"batch_size\": 8.5"),
       "field 'batch_size': expected an integer, got 8.5"},
      {with("", ", \"batch_size\": 0"),
       "field 'batch_size': 0 is outside [1, 1048576]"},
      {with("", ", \"image_size\": [224]"),
       "field 'image_size': expected 2 integers, got 1"},
      {with("", ", \"classifier\": \"cls\""),
       "classifier 'cls' is not supported ('token', 'gap', 'map' or '0')"},
      {with(", \"position_emb\": {\"name\": \"sincos\"}", ""),
       "position_emb 'sincos' is not supported ('learned', 'sincos2d' or "
       "'none')"},
      {with(", \"position_emb\": {\"name\": \"sincos2d\", \"h\": 2}", ""),
       "unknown field 'encoder.position_emb.h'"},
      {with(", \"attention_qk_norm\": true", ""),
       "field 'encoder.attention_qk_norm': query-key normalisation is not "
       "supported"},
      {with("", ", \"patch_size\": [16, 8]"), "duplicate key 'patch_size'"},
      {"{\"patch_size\": [16, 8], \"hidden_size\": 64, \"num_classes\": 10,"
       "\"image_size\": 224,"
       "\"num_layers\": 2, \"mlp_dim\": 8, \"num_heads\": 2}",
       "field 'patch_size': non-square patches (16, 8) are not supported"},
      {with("", ", \"representation_size\": true"),
       "field 'representation_size': expected an integer, got a boolean"},
      {with(", \"moe\": {\"layers\": [1, 4], \"num_experts\": 4}", ""),
       "MoE layer 4 is outside [0, num_layers = 4)"},
      {with(", \"moe\": {\"layers\": [1, 1], \"num_experts\": 4}", ""),
       "MoE layer 1 is listed twice"},
      {with(", \"moe\": {\"layers\": [1]}", ""),
       "field 'encoder.moe.num_experts' is missing"},
      {with(", \"moe\": {\"layers\": [1], \"num_experts\": 4, \"router\": "
            "{\"num_selected_experts\": 5}}",
            ""),
       "num_selected_experts 5 must be in [1, num_experts = 4]"},
      {with(", \"moe\": {\"layers\": [1], \"num_experts\": 4, \"router\": "
            "{\"name\": \"SoftRouter\"}}",
            ""),
       "router 'SoftRouter' is not supported"},
      {with(", \"moe\": {\"layers\": [1], \"num_experts\": 4, \"router\": "
            "{\"dispatcher\": {\"capacity_factor\": -1}}}",
            ""),
       "field 'encoder.moe.router.dispatcher.capacity_factor': must be a "
       "number in (0, 65536]"},
      {with(", \"moe\": {\"layers\": [1], \"num_experts\": 4, \"router\": "
            "{\"dispatcher\": {\"capacity_factor\": 2}}}",
            ", \"max_capacity_factor\": 1.5"),
       "max_capacity_factor must be 0 (none) or in [capacity_factor"},
      {with("", ", \"class_names\": [\"a\", \"b\"]"),
       "class_names has 2 names for 10 classes"},
      {with("", ", \"class_names\": [\"a\", 2]"),
       "field 'class_names': expected a string, got a number"},
      {with("", ", \"name\": \"my model\""),
       "field 'name': 'my model' is not 1-128 letters"},
      {"{\"patch_size\": 16, \"num_classes\": 10, \"image_size\": 224, "
       "\"encoder\": "
       "{\"num_layers\": 4, \"mlp_dim\": 128, \"num_heads\": 4}}",
       "field 'hidden_size' is missing"},
      {"{\"patch_size\": 16, \"hidden_size\": 64, \"num_classes\": 10, "
       "\"image_size\": 224, \"encoder\": {\"num_layers\": 4, "
       "\"mlp_dim\": 128, \"num_heads\": 5}}",
       "num_heads 5 does not divide hidden_size 64"},
      {"{\"patch_size\": 300, \"hidden_size\": 64, \"num_classes\": 10, "
       "\"image_size\": 224, \"encoder\": {\"num_layers\": 4, "
       "\"mlp_dim\": 128, \"num_heads\": 4}}",
       "patch_size 300 must be in [1, image size 224x224]"},
      {"[1, 2]", "the config is an array, expected a JSON object"},
      {"{\"encoder\": " + std::string(1000, '[') + "}",
       "nesting deeper than 64 levels"},
      {"{\"hidden_size\": 64,}",
       "config.json: JSON line 1, column 20: syntax error "
       "while parsing object key"},
  };
  for (const Case &c : cases) {
    ModelConfig config;
    std::string error;
    EXPECT_FAILS_WITH(parse(c.text, config, error), error, c.message);
    EXPECT_EQ(error.rfind("config.json: ", 0), 0u) << error;
  }
  ModelConfig config;
  std::string error;
  EXPECT_FAILS_WITH(readModelConfig("/nonexistent/config.json", config, &error),
                    error, "cannot open '/nonexistent/config.json'");
}

/// Parameters of a config (vmoe-reference.md 8.1 formulas), for the paper's
/// JFT-300M head of 18,291 classes.
double paramCount(const ModelConfig &c) {
  double d = double(c.hiddenSize), m = double(c.mlpDim),
         e = double(c.numExperts), p = double(c.patchSize);
  double r = double(c.representationSize.value_or(c.hiddenSize));
  double classes = 18291, tokens = double(c.tokensPerImage());
  double n = p * p * 3 * d + d + d + tokens * d + 2 * d;
  for (int64_t l = 0; l < c.numLayers; ++l) {
    n += 4 * d + 4 * (d * d + d);
    bool moe = std::count(c.moeLayers.begin(), c.moeLayers.end(), l) != 0;
    n += moe ? e * (2 * d * m + m + d) + d * e : 2 * d * m + m + d;
  }
  n += d * r + r + r * classes + classes;
  return n / 1e6;
}

TEST(ModelConfig, PresetsMatchThePaper) {
  struct Case {
    const char *name;
    double millions; // vmoe-reference.md 8.1
  };
  for (Case p :
       {Case{"vmoe-s32", 296.9}, Case{"vmoe-b32-e32-every2", 980.6},
        Case{"vmoe-b16", 979.0}, Case{"vmoe-l16-e32-every2", 3446.0},
        Case{"vmoe-h14-e32-every2", 7160.8}, Case{"vmoe-h14-e32-last5", 2688.6},
        Case{"vmoe-l32-e32-last2", 845.8},
        // 14.69B (the paper says 14.705B; vmoe-reference.md 8.1).
        Case{"vmoe-15b", 14691.1}}) {
    ModelConfig c;
    std::string error;
    ASSERT_TRUE(presetConfig(p.name, c, &error)) << error;
    EXPECT_NEAR(paramCount(c), p.millions, 0.051) << p.name;
    EXPECT_EQ(c.numSelectedExperts, 2);
    EXPECT_EQ(c.capacityFactor, 1.05);
    EXPECT_EQ(c.groupSize, 8 * c.tokensPerImage());
    EXPECT_EQ(c.numClasses, 1000);
    EXPECT_EQ(c.imageHeight, 224);
    EXPECT_TRUE(checkModelConfig(c, &error)) << error;
  }
}

TEST(ModelConfig, PresetDetails) {
  ModelConfig c;
  std::string error;
  ASSERT_TRUE(presetConfig("vmoe-b16-e8-every2", c, &error)) << error;
  EXPECT_EQ(c.name, "vmoe_b16_e8_every2");
  EXPECT_EQ(c.patchSize, 16);
  EXPECT_EQ(c.hiddenSize, 768);
  EXPECT_EQ(c.numLayers, 12);
  EXPECT_EQ(c.numExperts, 8);
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(c.groupSize, 8 * 197);
  EXPECT_EQ(c.batchSize, 8);
  EXPECT_EQ(c.representationSize, 768);
  EXPECT_TRUE(c.bf16Dispatch);
  EXPECT_FALSE(c.batchPriority);
  ASSERT_TRUE(presetConfig("vmoe-s32-e8-last2", c, &error)) << error;
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(c.numLayers, 8);
  ASSERT_TRUE(presetConfig("vmoe-h14-e32-last5", c, &error)) << error;
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{23, 25, 27, 29, 31}));
  EXPECT_EQ(c.tokensPerImage(), 257);
  ASSERT_TRUE(presetConfig("vmoe-15b", c, &error)) << error;
  EXPECT_EQ(c.name, "vmoe_15b_e32_every2");
  EXPECT_EQ(c.numLayers, 48);
  EXPECT_EQ(c.hiddenSize, 1408);
  EXPECT_EQ(c.mlpDim, 6400);
  EXPECT_EQ(c.numHeads, 16);
  EXPECT_EQ(c.patchSize, 14);
  EXPECT_EQ(c.moeLayers.size(), 24u);
  EXPECT_EQ(c.moeLayers.front(), 1);
  ASSERT_TRUE(presetConfig("vmoe-l16", c, &error)) << error;
  EXPECT_EQ(c.numExperts, 32);
  EXPECT_EQ(c.moeLayers.size(), 12u);
  ASSERT_TRUE(presetConfig("vmoe-b32-every3", c, &error)) << error;
  EXPECT_EQ(c.moeLayers, (std::vector<int64_t>{2, 5, 8, 11}));
  for (const std::string &name : presetExamples())
    EXPECT_TRUE(presetConfig(name, c, &error)) << name << ": " << error;
}

TEST(ModelConfig, UnknownPresets) {
  struct Case {
    const char *name, *message;
  };
  for (Case p : {Case{"resnet50", "it does not start with 'vmoe-<arch>'"},
                 Case{"vmoe-x99", "no architecture 'x99'"},
                 Case{"vmoe-b16-e1", "'e1' is not e<experts>"},
                 Case{"vmoe-b16-e8-last7", "last7 exceeds the 6 odd blocks"},
                 Case{"vmoe-b16-every13", "every13 exceeds the 12 blocks"},
                 Case{"vmoe-b16-every0", "'every0' needs a positive n"},
                 Case{"vmoe-b16-e8-every2-x", "unexpected 'x'"},
                 Case{"vmoe-b16-often", "'often' is not every<n> or last<n>"},
                 Case{"", "it does not start with"}}) {
    ModelConfig c;
    std::string error;
    EXPECT_FAILS_WITH(presetConfig(p.name, c, &error), error, p.message);
    EXPECT_EQ(error.rfind("unknown preset '", 0), 0u) << error;
    EXPECT_NE(error.find("vmoe-b16-e8-every2"), std::string::npos) << error;
  }
}

} // namespace
} // namespace vmoe::readers::test
