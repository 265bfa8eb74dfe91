//===- ModelConfig.h - vmoe model configs as JSON, and presets --*- C++ -*-===//
//
// The fields of vmoe's `config.model` that a V-MoE needs at inference, read
// from JSON, and presets for the paper's architectures.
//
// Accepted JSON (an object; field names are vmoe's):
//   {"name": "VisionTransformerMoe",
//    "image_size": 224 | [h, w],            (see "Image size" below)
//    "num_channels": 3,                                (default 3)
//    "patch_size": 16 | [16, 16] | {"size": [16, 16]}, (required; square)
//    "hidden_size": 768,                               (required)
//    "classifier": "token" | "gap" | "map" | "0",      (default "token")
//    "representation_size": 768 | null,                (default null)
//    "num_classes": 1000,                              (required)
//    "encoder": {"num_layers", "mlp_dim", "num_heads", (required)
//      "position_emb": {"name": "learned" | "sincos2d" | "none",
//                       "temperature": 10000.0},      (default learned)
//      "moe": {"layers": [1, 3, ...], "num_experts": 8, (both required if
//              "group_size": 1576 | null,              "moe" is given;
//              "router": {"num_selected_experts": 2,   group_size null/0:
//                "dispatcher": {"capacity_factor": 1.05,   one image)
//                  "batch_priority": false, "bfloat16": true}}}},
//    "max_capacity_factor": 2.0 | null, "batch_size": 1,
//    "class_names": ["tench", ...]}                    (num_classes of them)
// Also accepted, as the same fields:
//  - "transformer" for "encoder" (big_vision's name), "moe" at the top
//    level for "encoder.moe", "patches" for "patch_size";
//  - a flat form: num_layers, mlp_dim, num_heads, moe_layers, num_experts,
//    group_size, num_selected_experts, capacity_factor, batch_priority,
//    bfloat16 at the top level;
//  - dotted keys as vmoe's common.flatten_dict prints them
//    ("encoder.moe.num_experts": 8);
//  - vmoe's training-only fields, ignored: head_bias_init,
//    head_kernel_zero_init, dropout_rate, attention_dropout_rate,
//    moe.dropout_rate, moe.split_rngs, router.noise_std,
//    router.importance_loss_weight, router.load_loss_weight,
//    dispatcher.name ("einsum" | "indices"), dispatcher.partition_spec,
//    router.name (must be "NoisyTopExpertsPerItemRouter", the V-MoE
//    router), attention_qk_norm (must be false).
// A whole vmoe config as ml_collections dumps it ({"model": {...},
// "dataset": {...}, "evaluate": {...}, "optimizer": ...}) is read as vmoe's
// evaluation builds the model: "model", deep-updated with
// "evaluate.model_overrides" (the released S/32 config raises the capacity
// factor to 4.0 there). Its other trainer fields are ignored; beside
// "model" only our inference fields (batch_size, max_capacity_factor,
// class_names, image_size, name) are read.
// Image size: vmoe's model has none (the input pipeline fixes it), so it is,
// first found: ConfigReadOptions' (vmoe-compile --image-size), the config's
// "image_size", or the size that the `process` strings of the config's
// evaluation datasets (every "dataset" entry but "train"; "train" when it is
// the only one) end with: resize(N | [h, w]), central_crop(...),
// random_crop(...), inception_crop(N) or decode_jpeg_and_inception_crop(N)
// as the last op that sets it. Evaluation datasets that disagree, or no
// size at all, are an error that says to pass --image-size.
// Anything else is an error naming the field, as is a wrong type (an
// integer field given 8.0 or "8"), a field given twice (as "num_layers" and
// "encoder.num_layers"), a key given twice in one object, or a value out of
// range. No config is an empty MoE: without "moe" the model is a dense ViT.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_MODELCONFIG_H
#define VMOE_READERS_MODELCONFIG_H

#include "vmoe/readers/Tensor.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmoe::readers {

/// Mirrors mlir::vmoe::VitMoeConfig (vmoe/Import/ModelBuilder.h) field by
/// field, plus the class names.
struct ModelConfig {
  std::string name = "vmoe";
  int64_t imageHeight = 224, imageWidth = 224, channels = 3;
  int64_t patchSize = 16;
  int64_t hiddenSize = 768;
  int64_t numLayers = 12;
  int64_t mlpDim = 3072;
  int64_t numHeads = 12;
  /// "token" (cls token, pooled), "0" (first patch token, no cls), "gap"
  /// (mean over tokens) or "map" (vmoe's MapHead: attention pooling).
  std::string classifier = "token";
  /// "learned" (Encoder/posembed_input/pos_embedding), "sincos2d" (vmoe's
  /// fixed 2-D sine-cosine table, the cls token gets none) or "none".
  std::string positionEmbedding = "learned";
  /// sincos2d's temperature (vmoe's DEFAULT_SINCOS2D_TEMPERATURE).
  double sincosTemperature = 10000.0;
  std::optional<int64_t> representationSize;
  int64_t numClasses = 1000;
  std::vector<int64_t> moeLayers;
  int64_t numExperts = 8;
  int64_t numSelectedExperts = 2;
  /// vmoe's NoisyTopItemsPerExpertRouter (expert choice: each expert takes
  /// its C best tokens of the group) instead of NoisyTopExpertsPerItemRouter
  /// (top-k); numSelectedExperts does not apply.
  bool expertChoice = false;
  /// dispatcher.capacity: the expert buffers' slots per group, fixed (no
  /// per-call capacity factor); 0: from the capacity factor.
  int64_t capacity = 0;
  /// Tokens per routing group; 0: the tokens of one image.
  int64_t groupSize = 0;
  double capacityFactor = 1.05;
  /// 0: the capacity factor.
  double maxCapacityFactor = 0.0;
  bool batchPriority = false;
  bool bf16Dispatch = true;
  int64_t batchSize = 1;
  /// Empty, or one name per class.
  std::vector<std::string> classNames;

  /// (image_height / patch) * (image_width / patch) + 1 for "token".
  int64_t tokensPerImage() const;
};

struct ConfigReadOptions {
  ReadLimits limits;
  /// When positive: the image size (vmoe-compile --image-size), over the
  /// config's and its input pipeline's.
  int64_t imageHeight = 0, imageWidth = 0;
};

/// Parses the JSON text of a config; `name` names it in messages.
bool parseModelConfig(std::string_view json, const std::string &name,
                      ModelConfig &out, std::string *error,
                      const ConfigReadOptions &options);
bool parseModelConfig(std::string_view json, const std::string &name,
                      ModelConfig &out, std::string *error,
                      const ReadLimits &limits = {});
bool readModelConfig(const std::string &path, ModelConfig &out,
                     std::string *error, const ConfigReadOptions &options = {});

/// The config as JSON in vmoe's layout ("encoder" holds num_layers,
/// mlp_dim, num_heads, position_emb and moe), with the inference fields
/// (image_size, channels, batch_size, max_capacity_factor, class_names):
/// what `vmoe-compile --emit=config` prints and modules store;
/// parseModelConfig reads it back to the same config.
std::string modelConfigToJson(const ModelConfig &config);

/// "384" or "384x256" (height x width), as vmoe-compile --image-size takes
/// it.
bool parseImageSize(std::string_view text, int64_t &height, int64_t &width,
                    std::string *error);

/// Command-line changes to a config (vmoe-compile's --batch, --group-size,
/// --capacity-factor, --max-capacity-factor, --bpr); zero / unset: keep.
struct ConfigOverrides {
  int64_t batchSize = 0, groupSize = 0;
  double capacityFactor = 0.0, maxCapacityFactor = 0.0;
  std::optional<bool> batchPriority;
};

/// Applies `overrides` as vmoe-compile does: a --batch whose tokens the
/// config's routing group no longer divides falls back to one image's
/// tokens per group; without --batch, a group of whole images compiles for
/// one group of them. Every change to the routing group (which decides
/// which tokens compete for the experts' capacity, and so the results when
/// assignments are dropped) appends a warning to `warnings`.
void applyOverrides(ModelConfig &config, const ConfigOverrides &overrides,
                    std::vector<std::string> &warnings);

/// The range and consistency checks parseModelConfig applies, for a config
/// changed afterwards (command-line overrides). The group size's fit to the
/// batch is left to the model builder.
bool checkModelConfig(const ModelConfig &config, std::string *error);

/// Presets "vmoe-<arch>[-e<E>][-every<n>|-last<n>]" with arch s32, b32, b16,
/// l32, l16, h14 (vmoe-reference.md 8.1: configs/vmoe_paper/common.py):
/// E experts (default 32), MoE in every n-th block (default every 2) or in
/// the last n odd blocks, k = 2, capacity factor 1.05, group size 8 images,
/// batch 8 (one group), token classifier, representation_size = hidden
/// size, 224 px, 1000 classes, bfloat16 dispatch, no BPR. Examples:
/// "vmoe-b16-e8-every2", "vmoe-s32-e8-last2", "vmoe-h14-e32-last5".
bool presetConfig(std::string_view name, ModelConfig &out, std::string *error);
/// One name per architecture and common variant, for help texts.
std::vector<std::string> presetExamples();

} // namespace vmoe::readers

#endif // VMOE_READERS_MODELCONFIG_H
